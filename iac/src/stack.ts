// Agent Orchestrator infrastructure: typed Kubernetes resources built from the
// kustomize base in ../deploy, plus the Secrets (which never live in git).
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { clone, loadComponent, loadManifests, Manifest, DEFAULT_DEPLOY_DIR } from "./manifests";

export const CONTROL_PLANE_NAMESPACE = "agents-control-plane";
export const WORKER_NAMESPACE = "agents";
export const WORKER_SECRET_NAME = "claude-worker-secrets";
export const API_TOKENS_SECRET_NAME = "agent-orchestrator-api-tokens";
export const ORCHESTRATOR_NAME = "agent-orchestrator";

export interface StackArgs {
    /** kubeconfig contents for the provider (secret). */
    kubeconfig: pulumi.Input<string>;
    /** Secret values for the worker Secret. */
    anthropicApiKey: pulumi.Input<string>;
    githubToken: pulumi.Input<string>;
    /** Contents of the orchestrator API tokens file (key `tokens`). */
    apiTokens: pulumi.Input<string>;
    image?: string;
    workerImage?: string;
    serviceMonitor?: boolean;
    deployDir?: string;
}

export interface StackOutputs {
    provider: k8s.Provider;
    resources: Record<string, pulumi.CustomResource>;
    workerSecret: k8s.core.v1.Secret;
    apiTokensSecret: k8s.core.v1.Secret;
    controlPlaneNamespace: string;
    workerNamespace: string;
    serviceName: string;
}

/** Pulumi logical name for a manifest: kind-namespace-name. */
export function logicalName(m: Manifest): string {
    return [m.kind.toLowerCase(), m.metadata.namespace, m.metadata.name].filter(Boolean).join("-");
}

/** Applies stack config (images) to the orchestrator Deployment manifest. */
export function customizeDeployment(m: Manifest, image?: string, workerImage?: string): Manifest {
    const d = clone(m);
    const container = d.spec.template.spec.containers.find((c: any) => c.name === ORCHESTRATOR_NAME);
    if (!container) throw new Error("deployment.yaml: container agent-orchestrator not found");
    if (image) container.image = image;
    if (workerImage) {
        const env = container.env.find((e: any) => e.name === "AO_WORKER_IMAGE");
        if (!env) throw new Error("deployment.yaml: AO_WORKER_IMAGE env not found");
        env.value = workerImage;
    }
    return d;
}

export function deploy(args: StackArgs): StackOutputs {
    const provider = new k8s.Provider("k8s", {
        kubeconfig: pulumi.secret(args.kubeconfig),
        enableServerSideApply: true,
    });
    const deployDir = args.deployDir ?? DEFAULT_DEPLOY_DIR;
    // The base, plus the ServiceMonitor component where the Prometheus Operator is installed.
    const manifests = loadManifests(deployDir);
    if (args.serviceMonitor) manifests.push(...loadComponent("servicemonitor", deployDir));
    const resources: Record<string, pulumi.CustomResource> = {};

    // Namespaces first; everything namespaced depends on them.
    const namespaces: pulumi.Resource[] = [];
    for (const m of manifests.filter((x) => x.kind === "Namespace")) {
        const r = new k8s.core.v1.Namespace(logicalName(m), m as any, { provider });
        resources[logicalName(m)] = r;
        namespaces.push(r);
    }
    const nsOpts: pulumi.CustomResourceOptions = { provider, dependsOn: namespaces };

    const workerSecret = new k8s.core.v1.Secret(
        "secret-agents-claude-worker-secrets",
        {
            metadata: {
                name: WORKER_SECRET_NAME,
                namespace: WORKER_NAMESPACE,
                labels: { "app.kubernetes.io/part-of": ORCHESTRATOR_NAME },
            },
            type: "Opaque",
            stringData: {
                ANTHROPIC_API_KEY: pulumi.secret(args.anthropicApiKey),
                GITHUB_TOKEN: pulumi.secret(args.githubToken),
            },
        },
        nsOpts,
    );
    resources["secret-agents-claude-worker-secrets"] = workerSecret;

    const apiTokensSecret = new k8s.core.v1.Secret(
        "secret-agents-control-plane-agent-orchestrator-api-tokens",
        {
            metadata: {
                name: API_TOKENS_SECRET_NAME,
                namespace: CONTROL_PLANE_NAMESPACE,
                labels: {
                    "app.kubernetes.io/name": ORCHESTRATOR_NAME,
                    "app.kubernetes.io/part-of": ORCHESTRATOR_NAME,
                },
            },
            type: "Opaque",
            stringData: { tokens: pulumi.secret(args.apiTokens) },
        },
        nsOpts,
    );
    resources["secret-agents-control-plane-agent-orchestrator-api-tokens"] = apiTokensSecret;

    for (const raw of manifests) {
        if (raw.kind === "Namespace") continue;
        const name = logicalName(raw);
        let r: pulumi.CustomResource;
        switch (raw.kind) {
            case "ServiceAccount":
                r = new k8s.core.v1.ServiceAccount(name, raw as any, nsOpts);
                break;
            case "Role":
                r = new k8s.rbac.v1.Role(name, raw as any, nsOpts);
                break;
            case "RoleBinding":
                r = new k8s.rbac.v1.RoleBinding(name, raw as any, nsOpts);
                break;
            case "Deployment": {
                const m = customizeDeployment(raw, args.image, args.workerImage);
                r = new k8s.apps.v1.Deployment(name, m as any, {
                    ...nsOpts,
                    dependsOn: [...namespaces, apiTokensSecret, workerSecret],
                });
                break;
            }
            case "Service":
                r = new k8s.core.v1.Service(name, raw as any, nsOpts);
                break;
            case "NetworkPolicy":
                r = new k8s.networking.v1.NetworkPolicy(name, raw as any, nsOpts);
                break;
            case "ServiceMonitor":
                r = new k8s.apiextensions.CustomResource(name, raw as any, nsOpts);
                break;
            default:
                throw new Error(`unsupported kind in deploy/: ${raw.apiVersion} ${raw.kind}`);
        }
        resources[name] = r;
    }

    return {
        provider,
        resources,
        workerSecret,
        apiTokensSecret,
        controlPlaneNamespace: CONTROL_PLANE_NAMESPACE,
        workerNamespace: WORKER_NAMESPACE,
        serviceName: `${ORCHESTRATOR_NAME}.${CONTROL_PLANE_NAMESPACE}.svc`,
    };
}

/** Reads the stack config (project `agent-orchestrator`) and deploys. */
export function deployFromConfig(): StackOutputs {
    const config = new pulumi.Config("agent-orchestrator");
    return deploy({
        kubeconfig: config.requireSecret("kubeconfig"),
        anthropicApiKey: config.requireSecret("anthropicApiKey"),
        githubToken: config.requireSecret("githubToken"),
        apiTokens: config.requireSecret("apiTokens"),
        image: config.get("image"),
        workerImage: config.get("workerImage"),
        serviceMonitor: config.getBoolean("serviceMonitor") ?? false,
    });
}
