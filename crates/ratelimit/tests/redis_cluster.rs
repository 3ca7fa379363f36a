//! The Redis store on a real three-master Redis Cluster, through the `redis` crate's cluster
//! connection: every decision touches one key, so it is routed to that key's node, and the keys
//! spread over the cluster.
#![cfg(feature = "redis")]

mod redis_harness;

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis_harness::{admin, bounded, RedisServer};
use resile_ratelimit::redis::{OnFailure, RedisStore};
use resile_ratelimit::{Quota, Store};

const TEST_DEADLINE: Duration = Duration::from_secs(15);

/// Joins three fresh nodes into one cluster, a third of the slots each, and waits until every
/// node reports `cluster_state:ok`.
async fn form_cluster(nodes: &[RedisServer]) {
    let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
    let mut conns = Vec::new();
    for node in nodes {
        conns.push(admin(node).await);
    }
    for (conn, (lo, hi)) in conns.iter_mut().zip(ranges) {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("ADDSLOTS");
        for slot in lo..=hi {
            cmd.arg(slot);
        }
        let _: () = cmd.query_async(conn).await.expect("CLUSTER ADDSLOTS");
    }
    for node in &nodes[1..] {
        let _: () = redis::cmd("CLUSTER")
            .arg("MEET")
            .arg("127.0.0.1")
            .arg(node.port())
            .query_async(&mut conns[0])
            .await
            .expect("CLUSTER MEET");
    }
    let start = Instant::now();
    loop {
        let mut ok = 0;
        for conn in conns.iter_mut() {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(conn)
                .await
                .expect("CLUSTER INFO");
            let known = info.contains("cluster_known_nodes:3");
            if known && info.contains("cluster_state:ok") {
                ok += 1;
            }
        }
        if ok == conns.len() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the cluster did not form"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_route_to_each_keys_node() {
    let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_cluster_node()).collect();
    bounded(TEST_DEADLINE, async {
        form_cluster(&nodes).await;
        let client = ClusterClient::new(nodes.iter().map(RedisServer::url).collect::<Vec<_>>())
            .expect("cluster client");
        let conn = client
            .get_async_connection()
            .await
            .expect("cluster connection");
        let store = RedisStore::builder()
            .prefix("t:cluster:")
            .timeout(Duration::from_secs(2))
            .on_failure(OnFailure::Error)
            .build(conn);

        // 2 per hour for each of 30 keys: exactly 2 admitted per key, wherever it lives.
        let quota = Quota::per_hour(NonZeroU32::new(2).unwrap());
        for round in 0..3 {
            for user in 0..30u32 {
                let d = store
                    .decide(&user, &quota, NonZeroU32::MIN)
                    .await
                    .expect("a decision on the cluster");
                assert_eq!(d.allowed, round < 2, "user {user}, round {round}: {d:?}");
            }
        }
        assert_eq!(store.metrics().decisions, 90);

        // The keys are spread over the nodes, each on the node that owns its slot.
        let mut per_node = Vec::new();
        for node in &nodes {
            let mut conn = admin(node).await;
            let n: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
            per_node.push(n);
        }
        assert_eq!(per_node.iter().sum::<u64>(), 30, "{per_node:?}");
        assert!(
            per_node.iter().all(|n| *n > 0),
            "keys not spread over the cluster: {per_node:?}"
        );
    })
    .await;
}
