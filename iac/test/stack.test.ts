// Unit tests for the Pulumi program using Pulumi's mocks: no CLI, cloud or
// cluster needed.
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";

interface Registered {
    type: string;
    name: string;
    inputs: any;
}
const registered: Registered[] = [];

pulumi.runtime.setMocks(
    {
        newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: any } {
            registered.push({ type: args.type, name: args.name, inputs: args.inputs });
            return { id: `${args.name}-id`, state: args.inputs };
        },
        call(args: pulumi.runtime.MockCallArgs) {
            return args.inputs;
        },
    },
    "agent-orchestrator",
    "test",
    false,
);

const SECRETS = {
    "agent-orchestrator:kubeconfig": "apiVersion: v1\nkind: Config\n# fake\n",
    "agent-orchestrator:anthropicApiKey": "sk-ant-test-123",
    "agent-orchestrator:githubToken": "ghp_test_456",
    "agent-orchestrator:apiTokens": "token-a\ntoken-b\n",
};
pulumi.runtime.setAllConfig(
    {
        ...SECRETS,
        "agent-orchestrator:image": "registry.example/orchestrator:v1.2.3",
        "agent-orchestrator:workerImage": "registry.example/worker:v1.2.3",
        "agent-orchestrator:serviceMonitor": "true",
    },
    Object.keys(SECRETS),
);

// Import after mocks/config are set.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const stack = require("../src/stack") as typeof import("../src/stack");
// eslint-disable-next-line @typescript-eslint/no-var-requires
const manifests = require("../src/manifests") as typeof import("../src/manifests");

function value<T>(o: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve) => o.apply((v) => resolve(v)));
}
function secretness<T>(o: pulumi.Output<T>): Promise<boolean> {
    return pulumi.isSecret(o);
}
// Pulumi's wire signature for a secret value: registered inputs that are
// secret arrive at the (mock) engine as { [SECRET_SIG]: SECRET_VALUE, value }.
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";
function isWireSecret(v: any): boolean {
    return v !== null && typeof v === "object" && v[SECRET_SIG] === SECRET_VALUE;
}
/** Strips secret wrappers recursively. */
function reveal(v: any): any {
    if (isWireSecret(v)) return reveal(v.value);
    if (Array.isArray(v)) return v.map(reveal);
    if (v !== null && typeof v === "object") {
        return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, reveal(x)]));
    }
    return v;
}
function find(type: string, name?: string): Registered {
    const hits = registered.filter(
        (r) => r.type === type && (name === undefined || r.inputs?.metadata?.name === name),
    );
    assert.strictEqual(hits.length, 1, `expected exactly one ${type} ${name ?? ""}, got ${hits.length}`);
    return hits[0];
}

describe("agent-orchestrator Pulumi program", function () {
    let out: ReturnType<typeof stack.deployFromConfig>;

    before(async function () {
        out = stack.deployFromConfig();
        // Wait until every resource has been registered with the mock monitor.
        await Promise.all(Object.values(out.resources).map((r) => value(r.urn)));
        await value(out.provider.urn);
    });

    it("creates one resource per manifest in deploy/ and its ServiceMonitor component, plus the two Secrets", function () {
        const n = manifests.loadManifests().length + manifests.loadComponent("servicemonitor").length;
        assert.strictEqual(Object.keys(out.resources).length, n + 2);
        const types = registered.map((r) => r.type).sort();
        assert.deepStrictEqual(
            types,
            [
                "kubernetes:apps/v1:Deployment",
                "kubernetes:core/v1:Namespace",
                "kubernetes:core/v1:Namespace",
                "kubernetes:core/v1:Secret",
                "kubernetes:core/v1:Secret",
                "kubernetes:core/v1:Service",
                "kubernetes:core/v1:ServiceAccount",
                "kubernetes:core/v1:ServiceAccount",
                "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
                "kubernetes:networking.k8s.io/v1:NetworkPolicy",
                "kubernetes:rbac.authorization.k8s.io/v1:Role",
                "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
                "pulumi:providers:kubernetes",
            ].sort(),
        );
    });

    it("uses the kubeconfig from secret config for the provider", async function () {
        const p = find("pulumi:providers:kubernetes");
        assert.ok(isWireSecret(p.inputs.kubeconfig), "kubeconfig must be sent as a secret");
        assert.strictEqual(reveal(p.inputs.kubeconfig), SECRETS["agent-orchestrator:kubeconfig"]);
    });

    it("labels both namespaces with restricted Pod Security admission", function () {
        for (const ns of ["agents", "agents-control-plane"]) {
            const labels = find("kubernetes:core/v1:Namespace", ns).inputs.metadata.labels;
            for (const mode of ["enforce", "audit", "warn"]) {
                assert.strictEqual(labels[`pod-security.kubernetes.io/${mode}`], "restricted", `${ns} ${mode}`);
            }
        }
    });

    it("creates the service accounts; the worker one mounts no token", function () {
        const orch = find("kubernetes:core/v1:ServiceAccount", "agent-orchestrator").inputs;
        assert.strictEqual(orch.metadata.namespace, "agents-control-plane");
        const worker = find("kubernetes:core/v1:ServiceAccount", "claude-worker").inputs;
        assert.strictEqual(worker.metadata.namespace, "agents");
        assert.strictEqual(worker.automountServiceAccountToken, false);
    });

    it("grants the orchestrator exactly the documented verbs in agents only", function () {
        const role = find("kubernetes:rbac.authorization.k8s.io/v1:Role").inputs;
        assert.strictEqual(role.metadata.namespace, "agents");
        const rules = role.rules.map((r: any) => ({
            apiGroups: r.apiGroups,
            resources: r.resources,
            verbs: [...r.verbs].sort(),
        }));
        assert.deepStrictEqual(rules, [
            { apiGroups: [""], resources: ["pods"], verbs: ["create", "delete", "list", "watch"] },
            { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
            { apiGroups: [""], resources: ["secrets"], verbs: ["create", "delete"] },
        ]);
        const binding = find("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding").inputs;
        assert.strictEqual(binding.metadata.namespace, "agents");
        assert.deepStrictEqual(binding.roleRef, {
            apiGroup: "rbac.authorization.k8s.io",
            kind: "Role",
            name: role.metadata.name,
        });
        assert.deepStrictEqual(binding.subjects, [
            { kind: "ServiceAccount", name: "agent-orchestrator", namespace: "agents-control-plane" },
        ]);
        assert.ok(!registered.some((r) => /ClusterRole/.test(r.type)), "no cluster-wide RBAC");
    });

    it("builds the worker Secret from secret config, and its data is secret", async function () {
        const s = find("kubernetes:core/v1:Secret", "claude-worker-secrets").inputs;
        assert.strictEqual(s.metadata.namespace, "agents");
        assert.ok(isWireSecret(s.stringData), "stringData must be sent to the engine as a secret");
        assert.deepStrictEqual(reveal(s.stringData), {
            ANTHROPIC_API_KEY: SECRETS["agent-orchestrator:anthropicApiKey"],
            GITHUB_TOKEN: SECRETS["agent-orchestrator:githubToken"],
        });
        assert.strictEqual(await secretness(out.workerSecret.stringData), true, "stringData must be secret");
    });

    it("builds the API token Secret (key tokens) and its data is secret", async function () {
        const s = find("kubernetes:core/v1:Secret", "agent-orchestrator-api-tokens").inputs;
        assert.strictEqual(s.metadata.namespace, "agents-control-plane");
        assert.ok(isWireSecret(s.stringData), "stringData must be sent to the engine as a secret");
        assert.deepStrictEqual(reveal(s.stringData), { tokens: SECRETS["agent-orchestrator:apiTokens"] });
        assert.strictEqual(await secretness(out.apiTokensSecret.stringData), true);
    });

    it("does not leak secret values into stack outputs or non-secret resources", function () {
        const nonSecret = registered.filter(
            (r) => r.type !== "kubernetes:core/v1:Secret" && r.type !== "pulumi:providers:kubernetes",
        );
        const blob = JSON.stringify(nonSecret.map((r) => reveal(r.inputs)));
        for (const v of Object.values(SECRETS)) {
            assert.ok(!blob.includes(v), "secret value found in a non-secret resource");
        }
    });

    it("runs the orchestrator hardened, as uid 10001, with probes and resources", function () {
        const d = find("kubernetes:apps/v1:Deployment", "agent-orchestrator").inputs;
        assert.strictEqual(d.metadata.namespace, "agents-control-plane");
        const pod = d.spec.template.spec;
        assert.strictEqual(pod.serviceAccountName, "agent-orchestrator");
        assert.strictEqual(d.spec.template.metadata.labels["app.kubernetes.io/name"], "agent-orchestrator");
        assert.strictEqual(pod.securityContext.runAsNonRoot, true);
        assert.strictEqual(pod.securityContext.runAsUser, 10001);
        assert.strictEqual(pod.securityContext.seccompProfile.type, "RuntimeDefault");
        const c = pod.containers[0];
        assert.strictEqual(c.image, "registry.example/orchestrator:v1.2.3", "image from config");
        const sc = c.securityContext;
        assert.strictEqual(sc.runAsNonRoot, true);
        assert.strictEqual(sc.runAsUser, 10001);
        assert.strictEqual(sc.allowPrivilegeEscalation, false);
        assert.strictEqual(sc.readOnlyRootFilesystem, true);
        assert.deepStrictEqual(sc.capabilities.drop, ["ALL"]);
        assert.strictEqual(sc.seccompProfile.type, "RuntimeDefault");
        assert.deepStrictEqual(c.ports, [{ name: "http", containerPort: 8080, protocol: "TCP" }]);
        assert.strictEqual(c.livenessProbe.httpGet.path, "/healthz");
        assert.strictEqual(c.readinessProbe.httpGet.path, "/readyz");
        for (const k of ["requests", "limits"]) {
            assert.ok(c.resources[k].cpu && c.resources[k].memory, `resources.${k}`);
        }
        const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value]));
        assert.deepStrictEqual(env, {
            AO_LISTEN: "0.0.0.0:8080",
            AO_RUNTIME: "kubernetes",
            AO_LOG_FORMAT: "json",
            AO_DATA_DIR: "/data",
            AO_API_TOKENS_FILE: "/etc/agent-orchestrator/tokens/tokens",
            AO_K8S_NAMESPACE: "agents",
            AO_WORKER_IMAGE: "registry.example/worker:v1.2.3",
            AO_K8S_SECRET_NAME: "claude-worker-secrets",
            AO_K8S_SERVICE_ACCOUNT: "claude-worker",
            AO_CALLBACK_URL: "http://agent-orchestrator.agents-control-plane.svc:8080",
            // Worker settings, copied into every worker pod (README, "Worker configuration").
            AO_PERMISSION_MODE: "acceptEdits",
            AO_GIT_AUTHOR_NAME: "Agent Orchestrator",
            AO_GIT_AUTHOR_EMAIL: "agent@localhost",
            CLAUDE_CODE_MAX_RETRIES: "2",
        });
        const mounts = Object.fromEntries(c.volumeMounts.map((m: any) => [m.name, m.mountPath]));
        assert.strictEqual(mounts.data, "/data");
        assert.strictEqual(mounts["api-tokens"], "/etc/agent-orchestrator/tokens");
        const vols = Object.fromEntries(pod.volumes.map((v: any) => [v.name, v]));
        assert.deepStrictEqual(vols.data.emptyDir, {});
        assert.strictEqual(vols["api-tokens"].secret.secretName, "agent-orchestrator-api-tokens");
    });

    it("does not mutate the shared deploy/ manifests when overriding images", function () {
        const d = manifests.loadManifests().find((m) => m.kind === "Deployment")!;
        assert.strictEqual(d.spec.template.spec.containers[0].image, "ghcr.io/agent-orchestrator/orchestrator:latest");
    });

    it("exposes the orchestrator Service on 8080 (http) and a ServiceMonitor on /metrics", function () {
        const svc = find("kubernetes:core/v1:Service", "agent-orchestrator").inputs;
        assert.strictEqual(svc.metadata.namespace, "agents-control-plane");
        assert.strictEqual(svc.spec.type, "ClusterIP");
        assert.deepStrictEqual(svc.spec.selector, { "app.kubernetes.io/name": "agent-orchestrator" });
        assert.strictEqual(svc.spec.ports[0].port, 8080);
        assert.strictEqual(svc.spec.ports[0].name, "http");
        const sm = find("kubernetes:monitoring.coreos.com/v1:ServiceMonitor").inputs;
        assert.strictEqual(sm.spec.endpoints[0].port, "http");
        assert.strictEqual(sm.spec.endpoints[0].path, "/metrics");
    });

    it("isolates worker pods: no ingress; egress only DNS, 443, and the orchestrator", function () {
        const np = find("kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs;
        assert.strictEqual(np.metadata.namespace, "agents");
        assert.deepStrictEqual(np.spec.podSelector, { matchLabels: { app: "claude-worker" } });
        assert.deepStrictEqual([...np.spec.policyTypes].sort(), ["Egress", "Ingress"]);
        assert.deepStrictEqual(np.spec.ingress ?? [], []);
        const egress = np.spec.egress;
        assert.strictEqual(egress.length, 3);
        assert.deepStrictEqual(egress[0].to, [
            { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } } },
        ]);
        assert.deepStrictEqual(
            egress[0].ports.map((p: any) => `${p.protocol}/${p.port}`).sort(),
            ["TCP/53", "UDP/53"],
        );
        assert.deepStrictEqual(egress[1].ports, [{ protocol: "TCP", port: 443 }]);
        assert.deepStrictEqual(egress[2].to, [
            {
                namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "agents-control-plane" } },
                podSelector: { matchLabels: { "app.kubernetes.io/name": "agent-orchestrator" } },
            },
        ]);
        assert.deepStrictEqual(egress[2].ports, [{ protocol: "TCP", port: 8080 }]);
    });
});

describe("deploy/ kustomize base", function () {
    it("lists every YAML file of deploy/ in kustomization.yaml (one source of truth)", function () {
        const fs = require("fs") as typeof import("fs");
        const path = require("path") as typeof import("path");
        const yaml = require("js-yaml") as typeof import("js-yaml");
        const dir = manifests.DEFAULT_DEPLOY_DIR;
        const k = yaml.load(fs.readFileSync(path.join(dir, "kustomization.yaml"), "utf8")) as any;
        const files = fs
            .readdirSync(dir)
            .filter((f: string) => /\.ya?ml$/.test(f) && f !== "kustomization.yaml")
            .sort();
        assert.deepStrictEqual([...k.resources].sort(), files);
    });

    it("keeps the ServiceMonitor out of the base (it applies without the Prometheus Operator)", function () {
        const kinds = manifests.loadManifests().map((m) => m.kind);
        assert.ok(!kinds.includes("ServiceMonitor"), `base kinds: ${kinds}`);
        assert.deepStrictEqual(
            manifests.loadComponent("servicemonitor").map((m) => `${m.apiVersion} ${m.kind}`),
            ["monitoring.coreos.com/v1 ServiceMonitor"],
        );
    });

    it("contains no Secret with values (secrets come from Pulumi or kubectl create secret)", function () {
        const all = [...manifests.loadManifests(), ...manifests.loadComponent("servicemonitor")];
        assert.ok(!all.some((m) => m.kind === "Secret"));
    });
});

describe("logicalName / customizeDeployment", function () {
    it("derives stable logical names", function () {
        assert.strictEqual(
            stack.logicalName({ apiVersion: "v1", kind: "Namespace", metadata: { name: "agents" } }),
            "namespace-agents",
        );
        assert.strictEqual(
            stack.logicalName({
                apiVersion: "v1",
                kind: "ServiceAccount",
                metadata: { name: "claude-worker", namespace: "agents" },
            }),
            "serviceaccount-agents-claude-worker",
        );
    });

    it("keeps defaults when no image override is given", function () {
        const d = manifests.loadManifests().find((m) => m.kind === "Deployment")!;
        const c = stack.customizeDeployment(d).spec.template.spec.containers[0];
        assert.strictEqual(c.image, "ghcr.io/agent-orchestrator/orchestrator:latest");
    });
});
