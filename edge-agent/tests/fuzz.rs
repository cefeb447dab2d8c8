//! Fuzz targets (proptest; nightly cargo-fuzz is not available here) for the parsers of what a device says
//! about itself — its hardware facts: /etc/nv_tegra_release, the JetPack package version, CUDA's
//! version.json, the device-tree model, /proc/meminfo, nvidia-smi, a tegrastats line and `tailscale status --json`. Whatever a
//! device prints, each returns a value or nothing (an error for Tailscale), never a panic, and what it
//! returns is well-formed. More cases: `PROPTEST_CASES=100000 cargo test -p edge-agent --test fuzz`.

use edge_agent::facts;
use proptest::prelude::*;

proptest! {
    #[test]
    fn tegra_releases_read_as_a_version_or_nothing(text in prop_oneof![".{0,120}", "# R[0-9]{1,12} \\(release\\), REVISION: [0-9.]{0,12}, .{0,20}"]) {
        if let Some(l4t) = facts::l4t_from_tegra_release(&text) {
            prop_assert_eq!(l4t.split('.').count(), 3);
            let _ = facts::jetpack_from_l4t(&l4t);
        }
    }

    #[test]
    fn package_versions_read_as_digits_or_nothing(text in prop_oneof![".{0,40}", "[0-9.+-]{0,20}[a-z0-9]{0,6}"]) {
        if let Some(v) = facts::jetpack_from_package(&text) {
            prop_assert!(v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())));
        }
    }

    #[test]
    fn readings_are_finite_numbers_or_nothing(gpu in "[a-zA-Z0-9.+-]{0,6}", temp in "[a-zA-Z0-9.+-]{0,6}", load in "[a-zA-Z0-9.+-]{0,6}") {
        let (g, t) = facts::tegrastats(&format!("RAM 1/2MB GR3D_FREQ {gpu}% cpu@{temp}C tj@40C"));
        prop_assert!(g.is_none_or(f32::is_finite) && t.is_none_or(f32::is_finite));
        let load1 = facts::load1(&format!("{load} 0.5 0.5 1/2 3"));
        prop_assert!(load1.is_none_or(f32::is_finite));
        for word in ["nan", "inf", "-inf", "NaN", "infinity"] {
            prop_assert_eq!(facts::load1(word), None);
            let line = format!("GR3D_FREQ {word}% tj@{word}C");
            prop_assert_eq!(facts::tegrastats(&line), (None, None));
        }
    }

    #[test]
    fn other_device_texts_never_panic(text in ".{0,300}", model in ".{0,60}") {
        let _ = facts::cuda_from_version_json(&text);
        let _ = facts::cuda_from_version_json(&format!("{{\"cuda\": {{\"name\": \"CUDA SDK\", \"version\": {text:?}}}}}"));
        let _ = facts::model(&text);
        let _ = facts::memory_bytes(&text);
        let _ = facts::memory_bytes(&format!("MemTotal: {text} kB\n"));
        let _ = facts::gpu_name(Some(&text), &model);
        let _ = facts::gpu_name(None, &model);
        let _ = facts::jetpack_from_l4t(&text);
        let (gpu, temperature) = facts::tegrastats(&text);
        prop_assert!(gpu.is_none_or(|g| !g.is_nan()) && temperature.is_none_or(|t| !t.is_nan()));
    }

    #[test]
    fn tailscale_status_is_read_or_refused(text in ".{0,300}", state in ".{0,12}", ips in proptest::collection::vec(".{0,20}", 0..3)) {
        let _ = facts::tailnet(&text);
        let status = serde_json::json!({"BackendState": state, "Self": {"HostName": "h", "DNSName": "h.tail.ts.net.", "TailscaleIPs": ips}});
        if let Ok(tailnet) = facts::tailnet(&status.to_string()) {
            prop_assert_eq!(state, "Running");
            prop_assert!(tailnet.ip.parse::<std::net::Ipv4Addr>().is_ok());
        }
    }
}
