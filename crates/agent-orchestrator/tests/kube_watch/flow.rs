//! API Priority and Fairness on the real API server, for the tests that squeeze the
//! orchestrator's flow: a FlowSchema that puts its ServiceAccount (and a neighbour's) into a
//! PriorityLevelConfiguration with `nominalConcurrencyShares: 1` and `limitResponse: Reject`
//! (a few seats), the neighbour that takes those seats (all of them, or in turns), and the
//! API server's gauges of the level.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::audit::Log;
use crate::orchestrator::Orchestrator;
use crate::world::{World, apply, delete_on_drop, kubectl};

fn squeeze_yaml(pl: &str, ctl: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: neighbour, namespace: {ctl}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: neighbour, namespace: {ctl}}}
rules: [{{apiGroups: [""], resources: [configmaps], verbs: [create, list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: neighbour, namespace: {ctl}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: neighbour}}
subjects: [{{kind: ServiceAccount, name: neighbour, namespace: {ctl}}}]
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {{name: {pl}}}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    lendablePercent: 0
    borrowingLimitPercent: 0
    limitResponse: {{type: Reject}}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {{name: {pl}}}
spec:
  priorityLevelConfiguration: {{name: {pl}}}
  matchingPrecedence: 500
  distinguisherMethod: {{type: ByUser}}
  rules:
  - subjects:
    - {{kind: ServiceAccount, serviceAccount: {{name: agent-orchestrator, namespace: {ctl}}}}}
    - {{kind: ServiceAccount, serviceAccount: {{name: neighbour, namespace: {ctl}}}}}
    resourceRules:
    - {{verbs: ["*"], apiGroups: ["*"], resources: ["*"], namespaces: ["*"], clusterScope: true}}
    nonResourceRules:
    - {{verbs: ["*"], nonResourceURLs: ["*"]}}
"#
    )
}

/// The neighbour: a client with its token, holding seats of the priority level.
pub struct Neighbour {
    http: reqwest::Client,
    pub token: String,
    /// The configmaps collection of the orchestrator's namespace, which it creates into.
    pub url: String,
    pub tls: Arc<rustls::ClientConfig>,
    /// The held requests' sockets, shut down to let go.
    held: Vec<std::net::TcpStream>,
}

impl Neighbour {
    pub async fn new(w: &World) -> Neighbour {
        let request = TokenRequest {
            spec: TokenRequestSpec::default(),
            ..TokenRequest::default()
        };
        let token = Api::<ServiceAccount>::namespaced(w.env.admin().await, &w.ctl)
            .create_token_request("neighbour", &PostParams::default(), &request)
            .await
            .expect("a token for the neighbour")
            .status
            .expect("TokenRequest status")
            .token;
        let ca = std::fs::read(w.env.pki.join("ca.crt")).expect("ca.crt");
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA"))
            .build()
            .expect("neighbour client");
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(&ca).expect("CA PEM"))
            .expect("CA");
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Neighbour {
            http,
            token,
            url: format!("{}/api/v1/namespaces/{}/configmaps", w.env.server, w.ctl),
            tls: Arc::new(tls),
            held: Vec::new(),
        }
    }

    /// Holds one seat: a create whose body starts but does not end until
    /// [`Neighbour::let_go`] (the API server reads the body after admitting the request).
    pub fn hold(&mut self) {
        let addr = self.url.trim_start_matches("https://");
        let (host, path) = addr.split_once('/').expect("URL path");
        let tcp = std::net::TcpStream::connect(host).expect("connect as the neighbour");
        self.held.push(tcp.try_clone().expect("socket"));
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(self.tls.clone(), name).expect("TLS");
        let head = format!(
            "POST /{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{{\r\n",
            self.token
        );
        // A thread per held request: it writes, then blocks reading until the socket closes.
        std::thread::spawn(move || {
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            if let Err(e) = tls.write_all(head.as_bytes()).and_then(|_| tls.flush()) {
                eprintln!("the neighbour's held request could not be sent: {e}");
                return;
            }
            // The only answer before let go is a refusal (the seat was taken): then it ends.
            let mut answer = [0u8; 512];
            if let Ok(n @ 1..) = tls.read(&mut answer) {
                eprintln!(
                    "a held request was answered: {}",
                    String::from_utf8_lossy(&answer[..n])
                );
            }
        });
    }

    /// Holds every seat: holds the missing ones until the API server's metrics show them all
    /// executing (a hold that lost a race for a seat is refused and held again).
    pub async fn hold_all(&mut self, w: &World, pl: &str, seats: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut executing = 0;
        while executing < seats {
            assert!(
                Instant::now() < deadline,
                "the neighbour holds {executing} of {seats} seats"
            );
            for _ in executing..seats {
                self.hold();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            executing = metric(w, "apiserver_flowcontrol_current_executing_seats", pl).await;
        }
    }

    pub fn let_go(&mut self) {
        for s in self.held.drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Probes (every 100 ms, at most 30 s) until a request of the flow gets `want`.
    pub async fn wait_for_status(&self, want: u16) -> reqwest::Response {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self
                .http
                .get(&self.url)
                .bearer_auth(&self.token)
                .send()
                .await;
            match r {
                Ok(r) if r.status().as_u16() == want => return r,
                other => assert!(
                    Instant::now() < deadline,
                    "the neighbour's probe never got {want}: last {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A world whose orchestrator's flow (and the neighbour's) goes to a priority level of its
/// own. The cluster-wide FlowSchema and PriorityLevelConfiguration are deleted on drop, pass
/// or fail, before the world's namespaces.
pub struct Squeezed {
    pub w: World,
    /// The priority level's (and FlowSchema's) name.
    pub pl: String,
}

impl Squeezed {
    pub async fn new(prefix: &str) -> Squeezed {
        let w = World::new(prefix, 0).await;
        let pl = format!("{prefix}-{}", w.ctl);
        apply(w.env, &squeeze_yaml(&pl, &w.ctl)).await;
        Squeezed { w, pl }
    }

    /// Starts the orchestrator (`max_concurrency`, more `serve` flags, on `port` if given)
    /// and waits for its first pod watch. Returns it, and the audit log from before it started.
    pub async fn start(
        &self,
        max_concurrency: usize,
        extra: &[&str],
        port: Option<u16>,
    ) -> (Orchestrator, Log) {
        let w = &self.w;
        let log = Log::from_now(&w.env.audit_log);
        let orch = w
            .orchestrator_with(&w.env.server, max_concurrency, extra, port)
            .await;
        let user = w.sa_user();
        log.wait_for("the orchestrator's first pod watch", 60, |evs| {
            crate::resume::watch_start(evs, &user, &w.ns, &[])
        })
        .await;
        (orch, log)
    }
}

impl Drop for Squeezed {
    fn drop(&mut self) {
        delete_on_drop(
            self.w.env,
            &["flowschema,prioritylevelconfiguration", &self.pl],
        );
    }
}

/// A gauge of the priority level from the API server's metrics (0 while it has none).
pub async fn metric(w: &World, name: &str, pl: &str) -> usize {
    let kc = w.env.admin_kubeconfig.clone();
    let metrics = kubectl(w.env, &kc, &["get", "--raw", "/metrics"], None).await;
    let pl = format!("priority_level=\"{pl}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&pl))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .map(|n| n as usize)
        .sum()
}

/// The seats of the priority level, once the API server has configured it.
pub async fn seats(w: &World, pl: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = metric(w, "apiserver_flowcontrol_current_limit_seats", pl).await;
        if n >= 1 {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "no seats for priority level {pl} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
