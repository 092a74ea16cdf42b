//! Self-test of the lab harness (placeholder while it is built).
mod common;

use common::{Lab, Underlay};

#[test]
fn two_hosts_v4() {
    let t = std::time::Instant::now();
    let lab = Lab::new(2, Underlay::V4).unwrap();
    eprintln!("Lab::new(2) took {:?}", t.elapsed());
    println!(
        "{}",
        lab.host(1)
            .vsctl(&["get", "Open_vSwitch", ".", "datapath_types"])
            .unwrap()
    );
}
