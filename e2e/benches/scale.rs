//! `make bench`: how close Paved gets to the physical limit of the API server.
//!
//! Three phases against the local control plane, same objects, same concurrency:
//!
//! 1. direct: the children Paved would create for N Services (from `paved
//!    render`, the controller's own builders) are applied by a plain
//!    server-side-apply client. The time until all exist is the physical limit.
//! 2. floor: what Paved's design itself asks of the API server, written by the
//!    plain client: per Service the Service object (in a copy of the CRD that no
//!    controller watches), for each child the read of its name and its write
//!    with an ownerReference to the Service, its first status write of
//!    Paved's size, and, through one watch of the Deployments, its Ready
//!    status write once its Deployment is available (`common::floor_phase`).
//!    No controller can beat this; the gap between it and phase 3 is the
//!    controller's own cost.
//! 3. paved: the Environments, Applications and N Services are applied and the
//!    controller creates the children. Timed from the first Service apply until
//!    every Service's status reflects its generation and all children exist.
//!
//! Each phase starts on an idle control plane with none of another phase's
//! objects. The phases alternate for several rounds, because a shared
//! machine's speed drifts between minutes: the ratio within a round is what
//! counts, and the summary gives the medians.
//!
//! Prints per round both times and their ratio, the writes per Service the
//! controller made (from the API server's own request counters) and the CPU
//! seconds of every process; at the end, the medians and the controller's peak
//! resident memory (`VmHWM` of PAVED_BENCH_CONTROLLER_PID).
//!
//! Settings: PAVED_BENCH_SERVICES (1000), PAVED_BENCH_ENVIRONMENTS (10),
//! PAVED_BENCH_CONCURRENCY (16), PAVED_BENCH_ROUNDS (3), PAVED_BIN
//! (target/release/paved), PAVED_BENCH_DIRECT_SECONDS: skip the direct phase
//! and take this earlier-measured time instead, for quick turns on the Paved phase.

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::Api;
use kube::discovery::Discovery;
use std::collections::BTreeMap;

use common::*;

#[tokio::main]
async fn main() {
    let services = setting("PAVED_BENCH_SERVICES", 1000);
    let environments = setting("PAVED_BENCH_ENVIRONMENTS", 10);
    let concurrency = setting("PAVED_BENCH_CONCURRENCY", 16);
    let rounds = setting("PAVED_BENCH_ROUNDS", 3).max(1);
    let client = Client::try_default()
        .await
        .expect("KUBECONFIG of the local cluster");
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let bench = Bench {
        namespaces: Api::<Namespace>::all(client.clone()),
        client: client.clone(),
        discovery,
        environments,
        services,
        concurrency,
    };
    let given_direct = std::env::var("PAVED_BENCH_DIRECT_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok());
    println!(
        "bench: {services} Services in {environments} Environments, concurrency {concurrency}, {rounds} rounds"
    );

    install_floor_crd(&client).await;
    let mut ratios = Vec::new();
    let mut floor_ratios = Vec::new();
    let mut direct_times = Vec::new();
    let mut floor_times = Vec::new();
    let mut paved_times = Vec::new();
    for round in 1..=rounds {
        let run = format!("b{}r{round}", std::process::id() % 100_000);
        println!("-- round {round}");
        // The control plane starts each phase idle: an earlier round's (or run's)
        // namespaces may still be terminating.
        wait_until_idle().await;
        let (direct, cpu_direct_start, cpu_direct) = match given_direct {
            Some(seconds) => {
                println!("direct:  skipped, taking {seconds:.2}s from PAVED_BENCH_DIRECT_SECONDS");
                (
                    Duration::from_secs_f64(seconds),
                    BTreeMap::new(),
                    BTreeMap::new(),
                )
            }
            None => {
                let direct = direct_phase(&bench, &format!("{run}-direct"), &run, None).await;
                settle_after(&bench, "direct", &run).await;
                direct
            }
        };
        let (floor, cpu_floor_start, cpu_floor) =
            floor_phase(&bench, &format!("{run}-floor"), &run, None).await;
        settle_after(&bench, "floor", &run).await;
        let prefix = format!("{run}-paved");
        let paved = paved_phase(&bench, &prefix, None).await;
        let ratio = paved.reflected.as_secs_f64() / direct.as_secs_f64();
        println!(
            "paved:   {services} Services applied in {:.2}s, all reflected with children in {:.2}s",
            paved.applied.as_secs_f64(),
            paved.reflected.as_secs_f64()
        );
        let over_floor = paved.reflected.as_secs_f64() / floor.as_secs_f64();
        println!(
            "ratio:   paved / direct = {ratio:.2}x; floor / direct = {:.2}x; paved / floor = {over_floor:.2}x",
            floor.as_secs_f64() / direct.as_secs_f64()
        );
        let writes = paved.writes_by_resource.values().sum::<f64>();
        println!(
            "writes:  {:.2} API writes per Service by the controller ({writes:.0} in all)",
            writes / services as f64
        );
        let breakdown: Vec<String> = paved
            .writes_by_resource
            .iter()
            .filter(|(_, n)| **n > 0.0)
            .map(|(resource, n)| format!("{resource} {:.2}", n / services as f64))
            .collect();
        println!("         per Service: {}", breakdown.join(", "));
        if !cpu_direct.is_empty() {
            println!("{}", cpu_line("direct", &cpu_direct_start, &cpu_direct));
        }
        if !cpu_floor.is_empty() {
            println!("{}", cpu_line("floor ", &cpu_floor_start, &cpu_floor));
        }
        if !paved.cpu_end.is_empty() {
            println!("{}", cpu_line("paved ", &paved.cpu_start, &paved.cpu_end));
        }
        let cleanup = Instant::now();
        delete_paved(&client, &prefix, environments).await;
        println!(
            "cleanup: Environments and namespaces deleted in {:.0}s",
            cleanup.elapsed().as_secs_f64()
        );
        ratios.push(ratio);
        floor_ratios.push(over_floor);
        direct_times.push(direct.as_secs_f64());
        floor_times.push(floor.as_secs_f64());
        paved_times.push(paved.reflected.as_secs_f64());
    }

    remove_floor_crd(&client).await;
    let list = |values: &[f64]| {
        values
            .iter()
            .map(|r| format!("{r:.2}x"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("-- summary over {rounds} rounds (medians)");
    println!(
        "direct {:.2}s, floor {:.2}s, paved {:.2}s",
        median(direct_times),
        median(floor_times),
        median(paved_times)
    );
    println!(
        "paved / direct {:.2}x (target <= 1.5x), per round: {}",
        median(ratios.clone()),
        list(&ratios)
    );
    println!(
        "paved / floor  {:.2}x, per round: {}",
        median(floor_ratios.clone()),
        list(&floor_ratios)
    );
    match peak_rss_mib() {
        Some(mib) => println!("memory:  controller peak resident {mib:.1} MiB (target < 100 MiB)"),
        None => println!("memory:  PAVED_BENCH_CONTROLLER_PID not set; peak resident not measured"),
    }
}

/// Every phase starts from the same cluster: a phase's namespaces are deleted,
/// and gone, before the next, and the control plane is idle again. Left in
/// place, its objects would make the next phase dearer (the ClusterIP allocator,
/// for one, counts every allocated address on each Service create), and the
/// controller-manager would still be making its pods.
async fn settle_after(bench: &Bench, phase: &str, run: &str) {
    let settle = Instant::now();
    delete_namespaces(&bench.namespaces, run).await;
    println!(
        "settle:  the {phase} phase's namespaces were deleted {:.0}s after its last apply",
        settle.elapsed().as_secs_f64()
    );
}
