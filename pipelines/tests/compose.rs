//! docker-compose.yml parses, names the services and ports the README promises, and every
//! flag it passes to nashflow exists.

use std::process::Command;

use serde_yaml::Value;

fn root(file: &str) -> String {
    std::fs::read_to_string(format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_file_matches_the_readme_and_the_cli() {
    let doc: Value = serde_yaml::from_str(&root("docker-compose.yml")).expect("valid YAML");
    let services = doc["services"].as_mapping().expect("services");
    for name in ["kafka", "topics", "nashflow", "simulator"] {
        assert!(services.contains_key(name), "service {name}");
    }
    let readme = root("README.md");
    assert!(
        readme.contains("docker compose up"),
        "README tells how to start it"
    );
    // Ports: the web page and Kafka for host producers, as the README says.
    assert_eq!(
        strings(&doc["services"]["nashflow"]["ports"]),
        ["8650:8650"]
    );
    assert!(readme.contains("http://localhost:8650"));
    assert_eq!(strings(&doc["services"]["kafka"]["ports"]), ["19092:19092"]);
    assert!(readme.contains("localhost:19092"));
    // KRaft mode: no ZooKeeper.
    assert!(
        doc["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
            .as_str()
            .unwrap()
            .contains("controller")
    );
    assert!(!services.contains_key("zookeeper"));
    // Every flag the compose file passes exists in that subcommand's --help.
    for service in ["nashflow", "simulator"] {
        let command = strings(&doc["services"][service]["command"]);
        let sub = &command[0];
        let help = Command::new(env!("CARGO_BIN_EXE_nashflow"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in command.iter().filter(|a| a.starts_with("--")) {
            assert!(
                help.contains(flag.as_str()),
                "{service}: `nashflow {sub}` has no {flag}"
            );
        }
    }
    // The nashflow image is built from the repository's Dockerfile.
    assert_eq!(doc["services"]["nashflow"]["build"].as_str(), Some("."));
    assert!(
        root("Dockerfile").contains("cmake"),
        "librdkafka builds from source"
    );
}
