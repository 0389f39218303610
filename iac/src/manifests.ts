// Loads the kustomize base in ../deploy so that Pulumi and `kubectl apply -k`
// share one source of truth.
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";

export interface Manifest {
    apiVersion: string;
    kind: string;
    metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: any };
    [k: string]: any;
}

/** Default location of the kustomize base, relative to this file. */
export const DEFAULT_DEPLOY_DIR = path.resolve(__dirname, "..", "..", "deploy");

/**
 * Returns every manifest listed in `<dir>/kustomization.yaml` `resources`, in
 * order: the base, which applies on any cluster. Only plain resource files are
 * supported (no generators/patches), which is all the base uses.
 */
export function loadManifests(dir: string = DEFAULT_DEPLOY_DIR): Manifest[] {
    return loadKustomization(dir, "Kustomization");
}

/**
 * Returns the manifests of the kustomize Component `<dir>/components/<name>`
 * (e.g. `servicemonitor`, which needs the Prometheus Operator CRDs and so is
 * not in the base).
 */
export function loadComponent(name: string, dir: string = DEFAULT_DEPLOY_DIR): Manifest[] {
    return loadKustomization(path.join(dir, "components", name), "Component");
}

function loadKustomization(dir: string, kind: "Kustomization" | "Component"): Manifest[] {
    const kustomization = yaml.load(fs.readFileSync(path.join(dir, "kustomization.yaml"), "utf8")) as {
        kind?: string;
        resources?: string[];
    };
    if (kustomization.kind !== kind) {
        throw new Error(`${dir}/kustomization.yaml is a ${kustomization.kind}, expected a ${kind}`);
    }
    const files = kustomization.resources ?? [];
    if (files.length === 0) {
        throw new Error(`${dir}/kustomization.yaml lists no resources`);
    }
    const manifests: Manifest[] = [];
    for (const file of files) {
        const docs = yaml.loadAll(fs.readFileSync(path.join(dir, file), "utf8"));
        for (const doc of docs) {
            if (doc === null || doc === undefined) continue;
            const m = doc as Manifest;
            if (!m.apiVersion || !m.kind || !m.metadata?.name) {
                throw new Error(`${file}: document without apiVersion/kind/metadata.name`);
            }
            manifests.push(m);
        }
    }
    return manifests;
}

/** Deep copy (manifests are plain JSON data). */
export function clone<T>(v: T): T {
    return JSON.parse(JSON.stringify(v));
}
