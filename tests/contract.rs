//! The contract files agree with the code: openapi.yaml names exactly the router's routes, and
//! docker-compose.yml and the README's configuration table agree with the configuration keys.

use serde_yaml::Value;
use std::collections::{BTreeSet, HashSet};

fn root_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(name: &str) -> Value {
    let mut v: Value =
        serde_yaml::from_str(&root_file(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    v.apply_merge()
        .unwrap_or_else(|e| panic!("{name}: merge keys: {e}"));
    v
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every `$ref` in the document, with where it sits.
fn refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let key = k.as_str().unwrap_or("");
                if key == "$ref" {
                    out.push((at.to_string(), v.as_str().unwrap_or("").to_string()));
                } else {
                    refs(v, &format!("{at}/{key}"), out);
                }
            }
        }
        Value::Sequence(s) => s
            .iter()
            .enumerate()
            .for_each(|(i, v)| refs(v, &format!("{at}/{i}"), out)),
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, r: &str) -> Option<&'a Value> {
    let mut cur = doc;
    for part in r.strip_prefix("#/")?.split('/') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

#[test]
fn openapi_is_valid_and_names_exactly_the_routes_the_router_serves() {
    // It parses as an OpenAPI 3.1 document (oas3's typed model rejects a malformed one).
    let typed = oas3::from_yaml(root_file("openapi.yaml"))
        .expect("openapi.yaml is a valid OpenAPI 3.1 document");
    typed
        .validate_version()
        .expect("a supported OpenAPI version");
    assert!(typed
        .components
        .as_ref()
        .is_some_and(|c| !c.schemas.is_empty()));
    let doc = yaml("openapi.yaml");
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "{version}");
    assert!(doc["info"]["title"].as_str().is_some() && doc["info"]["version"].as_str().is_some());

    let mut spec = BTreeSet::new();
    let mut op_ids = HashSet::new();
    let paths = doc["paths"].as_mapping().expect("paths");
    for (path, item) in paths {
        let path = path.as_str().expect("path string");
        let item = item.as_mapping().expect("path item");
        for (method, op) in item {
            let method = method.as_str().expect("method");
            if method == "parameters" {
                continue;
            }
            assert!(METHODS.contains(&method), "{path}: unknown key {method}");
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(op_ids.insert(id.to_string()), "operationId {id} twice");
            let responses = op["responses"]
                .as_mapping()
                .unwrap_or_else(|| panic!("{id}: no responses"));
            assert!(!responses.is_empty(), "{id}: no responses");
            for (status, _) in responses {
                let s = match status {
                    Value::Number(n) => n.to_string(),
                    other => other.as_str().unwrap_or("").to_string(),
                };
                assert!(
                    s == "default" || (s.len() == 3 && s.parse::<u16>().is_ok()),
                    "{id}: status {s}"
                );
            }
            // Path parameters are declared for every {name} in the path.
            for name in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
                let declared = op["parameters"]
                    .as_sequence()
                    .into_iter()
                    .chain(item.get("parameters").and_then(Value::as_sequence))
                    .flatten()
                    .any(|p| {
                        let p = p
                            .get("$ref")
                            .and_then(Value::as_str)
                            .and_then(|r| resolve(&doc, r))
                            .unwrap_or(p);
                        p["name"].as_str() == Some(name) && p["in"].as_str() == Some("path")
                    });
                assert!(declared, "{id}: path parameter {name} not declared");
            }
            spec.insert((method.to_string(), path.to_string(), id.to_string()));
        }
    }
    let router: BTreeSet<(String, String, String)> = yunlian_api::routes::ROUTES
        .iter()
        .map(|(m, p, id)| (m.to_string(), p.to_string(), id.to_string()))
        .collect();
    let only_spec: Vec<_> = spec.difference(&router).collect();
    let only_router: Vec<_> = router.difference(&spec).collect();
    assert!(
        only_spec.is_empty() && only_router.is_empty(),
        "only in spec: {only_spec:?}\nonly in router: {only_router:?}"
    );

    let mut all = Vec::new();
    refs(&doc, "#", &mut all);
    for (at, r) in &all {
        assert!(resolve(&doc, r).is_some(), "{at}: dangling $ref {r}");
    }
    for id in [
        "login",
        "refreshToken",
        "logout",
        "getMe",
        "changePassword",
        "createOrg",
        "listOrgs",
        "getOrg",
        "updateOrg",
        "createMember",
        "listMembers",
        "getMember",
        "updateMember",
        "importMembers",
        "grantRole",
        "revokeRole",
    ] {
        assert!(op_ids.contains(id), "operationId {id} missing");
    }
}

/// The keys of the README's configuration table (rows whose first cell is a `KEY`).
fn readme_keys() -> BTreeSet<String> {
    root_file("README.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|k| {
            k.chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_configuration_table_lists_every_setting() {
    let code: BTreeSet<String> = yunlian_api::config::KEYS
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    assert_eq!(readme_keys(), code);
}

#[test]
fn docker_compose_runs_a_county_deployment_that_agrees_with_the_configuration() {
    let doc = yaml("docker-compose.yml");
    let services = doc["services"].as_mapping().expect("services");
    let keys: HashSet<&str> = yunlian_api::config::KEYS.iter().map(|(k, _)| *k).collect();
    let names: Vec<&str> = services.keys().filter_map(Value::as_str).collect();
    for needed in ["postgres", "redis", "api1", "api2", "proxy"] {
        assert!(
            names.contains(&needed),
            "service {needed} missing: {names:?}"
        );
    }
    for (name, svc) in services {
        let name = name.as_str().unwrap_or("");
        let hc = &svc["healthcheck"];
        assert!(
            hc["test"].as_sequence().is_some_and(|t| !t.is_empty()),
            "{name}: no healthcheck"
        );
        if name.starts_with("api") {
            let env = svc["environment"]
                .as_mapping()
                .unwrap_or_else(|| panic!("{name}: environment"));
            for (k, _) in env {
                let k = k.as_str().unwrap_or("");
                assert!(keys.contains(k), "{name}: {k} is not a configuration key");
            }
            let get = |k: &str| env.get(k).and_then(Value::as_str).unwrap_or("");
            assert!(
                get("DATABASE_URL").starts_with("postgres://"),
                "{name}: DATABASE_URL"
            );
            assert!(
                get("REDIS_URL").starts_with("redis://"),
                "{name}: REDIS_URL"
            );
            assert!(
                get("YUNLIAN_BIND").starts_with("0.0.0.0:"),
                "{name}: bind all interfaces"
            );
            assert_eq!(
                get("YUNLIAN_TRUST_PROXY"),
                "true",
                "{name}: behind the proxy"
            );
            assert!(
                !get("YUNLIAN_JWT_SECRET").is_empty(),
                "{name}: replicas share one signing secret"
            );
            let port = get("YUNLIAN_BIND").rsplit(':').next().unwrap_or("");
            let hc_text = format!("{:?}", hc["test"]);
            assert!(
                hc_text.contains("/readyz") && hc_text.contains(port),
                "{name}: healthcheck probes /readyz"
            );
            assert_eq!(
                svc["build"]["dockerfile"].as_str(),
                Some("api/Dockerfile"),
                "{name}: build"
            );
            let deps = svc["depends_on"].as_mapping().expect("depends_on");
            for d in ["postgres", "redis"] {
                assert_eq!(
                    deps[d]["condition"].as_str(),
                    Some("service_healthy"),
                    "{name} waits for {d}"
                );
            }
        }
    }
    assert!(
        doc["volumes"].as_mapping().is_some_and(|v| !v.is_empty()),
        "named volumes"
    );
    let dockerfile = root_file("api/Dockerfile");
    assert!(
        dockerfile.matches("FROM ").count() >= 2,
        "multi-stage Dockerfile"
    );
}

#[test]
fn the_mutation_table_names_exactly_the_mutations_the_contract_lists() {
    let doc = yaml("openapi.yaml");
    let listed: BTreeSet<String> = doc["components"]["schemas"]["Mutation"]["x-mutations"]
        .as_sequence()
        .expect("Mutation.x-mutations")
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let served: BTreeSet<String> = yunlian_api::mutations::NAMES
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(listed, served);
}

#[test]
fn the_synced_entities_are_exactly_the_contracts() {
    let doc = yaml("openapi.yaml");
    let listed: BTreeSet<String> = doc["components"]["schemas"]["ScopeChanges"]["properties"]
        ["changes"]["items"]["properties"]["entity"]["enum"]
        .as_sequence()
        .expect("entity enum")
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let served: BTreeSet<String> = yunlian_domain::sync::Entity::ALL
        .iter()
        .map(|e| e.as_str().to_string())
        .collect();
    assert_eq!(listed, served);
}

/// Every code in openapi.yaml (`x-codes` anywhere), with the messages a person reads.
#[test]
fn every_code_in_the_contract_has_a_chinese_and_an_english_message() {
    use yunlian_api::errors::{message, Lang};
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Mapping(m) => {
                for (k, v) in m {
                    if k.as_str() == Some("x-codes") {
                        let lists: Vec<&Value> = match v {
                            Value::Mapping(per_status) => per_status.values().collect(),
                            other => vec![other],
                        };
                        for l in lists {
                            for c in l.as_sequence().into_iter().flatten() {
                                out.insert(c.as_str().unwrap_or("").to_string());
                            }
                        }
                    } else {
                        walk(v, out);
                    }
                }
            }
            Value::Sequence(s) => s.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut codes = BTreeSet::new();
    walk(&yaml("openapi.yaml"), &mut codes);
    assert!(codes.len() > 60, "{codes:?}");
    let generic = (message("", Lang::Zh), message("", Lang::En));
    let missing: Vec<&String> = codes
        .iter()
        .filter(|c| message(c, Lang::Zh) == generic.0 || message(c, Lang::En) == generic.1)
        .collect();
    assert!(
        missing.is_empty(),
        "codes without their own message: {missing:?}"
    );
}
