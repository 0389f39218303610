// Pulumi entrypoint: reads stack config and deploys Agent Orchestrator.
import { deployFromConfig } from "./src/stack";

const out = deployFromConfig();

export const orchestratorNamespace = out.controlPlaneNamespace;
export const workerNamespace = out.workerNamespace;
export const orchestratorService = out.serviceName;
