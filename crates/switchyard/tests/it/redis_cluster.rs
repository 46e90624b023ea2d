//! Redis Cluster: a three-primary cluster started here (Debian's
//! redis-server), and the limits, budgets, cache and stream-resume flows of
//! the single-server tests run against it, two gateways sharing it.
//! Every operation that touches several keys keeps them in one hash slot;
//! a cluster answers CROSSSLOT otherwise, which these flows would show.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Gw, postgres_url, start_mocks};

pub struct Cluster {
    nodes: Vec<Child>,
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.kill();
            let _ = n.wait();
        }
    }
}

fn free_port() -> u16 {
    // A cluster node also listens on its port + 10000.
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < 55000 && std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

impl Cluster {
    /// Three primaries, no replicas, every slot assigned.
    pub fn start() -> Option<Cluster> {
        let server = crate::binary::required_env("SWITCHYARD_REDIS_SERVER")?;
        let cli = std::path::Path::new(&server).with_file_name("redis-cli");
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let nodes = ports
            .iter()
            .map(|p| {
                Command::new(&server)
                    .args(["--port", &p.to_string(), "--bind", "127.0.0.1"])
                    .args(["--cluster-enabled", "yes"])
                    .args(["--cluster-config-file", &format!("nodes-{p}.conf")])
                    .args(["--save", "", "--appendonly", "no"])
                    .current_dir(dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let cluster = Cluster {
            nodes,
            ports,
            _dir: dir,
        };
        let started = Instant::now();
        for p in &cluster.ports {
            while std::net::TcpStream::connect(("127.0.0.1", *p)).is_err() {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "node {p} did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let addrs: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Every node agrees the cluster is up.
        for p in &cluster.ports {
            loop {
                let info = Command::new(&cli)
                    .args(["-p", &p.to_string(), "cluster", "info"])
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "cluster not ok on {p}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(cluster)
    }

    pub fn config(&self) -> String {
        format!(
            "[redis]\nurl = \"redis://127.0.0.1:{}\"\ncluster = true\n",
            self.ports[1]
        )
    }

    /// Keys on each node: the data really is spread over the three.
    pub fn keys_per_node(&self) -> Vec<usize> {
        self.ports
            .iter()
            .map(|p| {
                let out = Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "dbsize"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .unwrap_or(0)
            })
            .collect()
    }
}

/// Two gateways on one Postgres database and the cluster.
async fn two_gateways(cluster: &Cluster, pg: &str, extra: &str) -> (Gw, Gw) {
    let config = format!("{extra}\n{}", cluster.config());
    let start = async || {
        let dir = tempfile::tempdir().unwrap();
        Gw::start_on(start_mocks().await, "", &config, pg, dir).await
    };
    (start().await, start().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_budgets_cache_and_streams_on_a_three_primary_cluster() {
    use crate::streams::{read_all, read_some, slow_stream, stream_call, text_of};
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let Some(pg) = postgres_url().await else {
        return;
    };

    // Rate limits and budgets, exact across two gateways.
    let (a, b) = two_gateways(&cluster, &pg, crate::keys::KEYED).await;
    let mut spread = Vec::new();
    for n in 0..6 {
        let (_, secret) = a
            .create_key(serde_json::json!({"name": format!("r{n}"), "rpm": 5}))
            .await;
        spread.push(secret);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    for secret in &spread {
        let (ok, limited, _) = crate::keys::burst(&[&a, &b], secret, 20).await;
        assert_eq!((ok, limited), (5, 15), "rpm=5 on a cluster");
    }
    let (ok, spent, budget) = crate::keys::budget_case(&[&a, &b]).await;
    assert_eq!(ok, 10);
    assert!(spent <= budget + 1e-9, "spent {spent} of {budget}");
    a.shutdown().await;
    b.shutdown().await;

    // The cache: hits, misses, bypasses, listing and purges.
    let (a, b) = two_gateways(&cluster, &pg, crate::cache::CONFIG).await;
    a.admin_call("DELETE", "/admin/v1/cache", None).await;
    crate::cache::cache_flow(&a).await;
    let (s, v) = b.admin_call("GET", "/admin/v1/cache", None).await;
    assert_eq!(s, 200);
    assert!(!v["data"].as_array().unwrap().is_empty(), "{v}");
    let (s, v) = b.admin_call("DELETE", "/admin/v1/cache", None).await;
    assert_eq!(s, 200);
    assert!(v["deleted"].as_u64().unwrap() >= 1, "{v}");
    let (_, v) = a.admin_call("GET", "/admin/v1/cache", None).await;
    assert!(v["data"].as_array().unwrap().is_empty(), "{v}");
    a.shutdown().await;
    b.shutdown().await;

    // A stream started on one gateway, read to its end through the other.
    let (a, b) = two_gateways(&cluster, &pg, "").await;
    for round in 0..4 {
        a.mocks
            .openai
            .script([slow_stream(20, Duration::from_millis(8))]);
        let resp = stream_call(&a).send().await.unwrap();
        let (id, first) = read_some(resp, 4).await;
        let last = first.last().unwrap().0;
        let rest = b
            .http
            .get(b.url(&format!("/v1/streams/{id}")))
            .header("last-event-id", last.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(rest.status(), 200, "round {round}");
        let joined: Vec<(u64, String)> = first.into_iter().chain(read_all(rest).await).collect();
        assert_eq!(joined.last().unwrap().1, "[DONE]");
        assert_eq!(
            text_of(&joined),
            (0..20).map(|i| format!("w{i} ")).collect::<String>()
        );
    }
    // A retry with the same Idempotency-Key through the other gateway
    // attaches to the stream instead of generating it again (the claim and
    // the stream are in different slots).
    a.mocks
        .openai
        .script([slow_stream(10, Duration::from_millis(10))]);
    let key = format!("cluster-{}", uuid::Uuid::now_v7().simple());
    let r1 = stream_call(&a)
        .header("idempotency-key", key.clone())
        .send()
        .await
        .unwrap();
    let r2 = stream_call(&b)
        .header("idempotency-key", key.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r1.headers()["x-switchyard-request-id"],
        r2.headers()["x-switchyard-request-id"]
    );
    let (e1, e2) = (read_all(r1).await, read_all(r2).await);
    assert_eq!(e1, e2);
    assert_eq!(e1.last().unwrap().1, "[DONE]");
    assert_eq!(b.mocks.openai.count(), 0, "generated once, on A");
    let per_node = cluster.keys_per_node();
    assert!(
        per_node.iter().filter(|n| **n > 0).count() >= 2,
        "keys on one node only: {per_node:?}"
    );
    eprintln!(
        "redis cluster (3 primaries): rpm=5 exact for 6 keys over two gateways, budget for 10 holds: {ok} admitted, \
         cache flow and purge, 4 streams resumed and an idempotent retry attached across gateways; keys per node {per_node:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}
