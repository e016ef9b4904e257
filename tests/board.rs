//! The deployment files in board/ against the code: the shipped config lists every option with
//! its real default and loads with the real loader; the systemd unit, sysusers.d, tmpfiles.d
//! and the config agree on the user, groups and state folder; the unit passes
//! `systemd-analyze verify` where that tool exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use facegate::config::Config;
use serde_json::Value;

fn board(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("board")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(board(name)).unwrap()
}

/// Leaf values of a JSON tree by dotted path.
fn leaves(value: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(v, &path, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf.clone());
        }
    }
}

/// An option line shown commented out: `# key = value`.
fn commented_option(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("# ")?;
    let (key, _) = rest.split_once(" = ")?;
    key.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        .then_some(rest)
}

#[test]
fn the_shipped_config_lists_every_option_with_its_default() {
    let text = read("config.toml");

    // The real loader accepts the file as shipped, with the terminal's paths.
    let shipped = Config::load(Some(&board("config.toml"))).unwrap();
    assert_eq!(
        shipped.gallery,
        PathBuf::from("/var/lib/facegate/gallery.fg")
    );
    assert_eq!(
        shipped.log.path,
        PathBuf::from("/var/lib/facegate/events.fglog")
    );

    // With every option uncommented it must still parse (no misspelled or stale key) ...
    let uncommented: String = text
        .lines()
        .map(|l| commented_option(l).unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let full: Config = toml::from_str(&uncommented).unwrap_or_else(|e| panic!("{e}"));

    // ... and list every key of the Config, each commented one at its real default.
    let mut defaults = BTreeMap::new();
    leaves(
        &serde_json::to_value(Config::default()).unwrap(),
        "",
        &mut defaults,
    );
    let mut listed = BTreeMap::new();
    leaves(
        &serde_json::to_value(toml::from_str::<toml::Value>(&uncommented).unwrap()).unwrap(),
        "",
        &mut listed,
    );
    let mut active = BTreeMap::new();
    leaves(
        &serde_json::to_value(toml::from_str::<toml::Value>(&text).unwrap()).unwrap(),
        "",
        &mut active,
    );
    let mut full_values = BTreeMap::new();
    leaves(&serde_json::to_value(&full).unwrap(), "", &mut full_values);
    assert!(defaults.len() > 40, "{defaults:?}");
    for (key, default) in &defaults {
        assert!(
            listed.contains_key(key),
            "board/config.toml does not list {key}"
        );
        // Optional settings (default: unset) are shown with an example value.
        if active.contains_key(key) || default.is_null() {
            continue;
        }
        assert_eq!(
            &full_values[key], default,
            "board/config.toml shows {key} with a default that is not the code's"
        );
    }
}

/// `key=value` lines of a unit or config file, in order.
fn directives(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn unit_users_and_state_folder_agree() {
    let unit = read("facegate.service");
    let d = directives(&unit);
    let get = |key: &str| -> Vec<&str> {
        d.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(get("Type"), ["notify"]);
    assert_eq!(get("ExecStart"), ["/usr/bin/facegate run"]);
    assert_eq!(get("Restart"), ["on-failure"]);
    assert_eq!(get("User"), ["facegate"]);
    assert_eq!(get("StateDirectory"), ["facegate facegate-key"]);
    assert_eq!(get("CapabilityBoundingSet"), [""]);
    assert_eq!(get("RestrictAddressFamilies"), ["AF_UNIX"]);
    assert!(!get("WatchdogSec").is_empty());
    for class in ["video4linux", "gpiochip", "fb", "spi", "i2c"] {
        assert!(
            get("DeviceAllow").contains(&format!("char-{class} rw").as_str()),
            "DeviceAllow char-{class}"
        );
    }

    // The groups the unit runs with exist through sysusers.d, and the user is in them.
    let sysusers = read("sysusers.conf");
    let rows: Vec<Vec<&str>> = sysusers
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rows
        .iter()
        .any(|r| r[0] == "u" && r[1] == "facegate" && r.contains(&"/var/lib/facegate")));
    for group in get("SupplementaryGroups")[0].split_whitespace() {
        assert!(
            rows.iter().any(|r| r[0] == "g" && r[1] == group),
            "sysusers.conf does not create group {group}"
        );
        assert!(
            rows.iter()
                .any(|r| r[0] == "m" && r[1] == "facegate" && r[2] == group),
            "sysusers.conf does not add facegate to {group}"
        );
    }
    // The udev rules hand the devices to those groups.
    let rules = read("99-facegate.rules");
    for (subsystem, group) in [
        ("gpio", "gpio"),
        ("spidev", "spi"),
        ("i2c-dev", "i2c"),
        ("video4linux", "video"),
    ] {
        assert!(
            rules
                .lines()
                .any(|l| l.contains(&format!("SUBSYSTEM==\"{subsystem}\""))
                    && l.contains(&format!("GROUP=\"{group}\""))),
            "udev rule for {subsystem}"
        );
    }

    // The state folder is private to the user, and the config keeps its data there.
    let tmpfiles = read("tmpfiles.conf");
    assert!(tmpfiles
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>()
            == [
                "d",
                "/var/lib/facegate",
                "0700",
                "facegate",
                "facegate",
                "-"
            ]));
    let config = Config::load(Some(&board("config.toml"))).unwrap();
    assert!(config.gallery.starts_with("/var/lib/facegate"));
    assert!(config.log.path.starts_with("/var/lib/facegate"));
    // The key is kept outside the gallery's folder, in a state folder of its own.
    let key = config.key_file();
    assert!(
        key.starts_with("/var/lib/facegate-key/"),
        "{}",
        key.display()
    );
    assert!(tmpfiles
        .lines()
        .any(|l| l.starts_with("d /var/lib/facegate-key 0700 facegate facegate")));
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    // The unit names the installed binary; verify a copy that names the one just built.
    let dir = tempfile::tempdir().unwrap();
    let unit =
        read("facegate.service").replace("/usr/bin/facegate", env!("CARGO_BIN_EXE_facegate"));
    let path = dir.path().join("facegate.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.lines().any(|l| l.contains("facegate.service")),
        "systemd-analyze verify: {stderr}"
    );
}
