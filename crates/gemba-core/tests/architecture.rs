//! docs/ARCHITECTURE.md's dependency block says, for every workspace crate, which workspace crates
//! it depends on (normal dependencies, optional ones included; dev-dependencies left out). This
//! test reads the manifests through `cargo metadata` and fails on any difference, in both
//! directions, naming the line to write. A new crate means one new line in the block.
//!
//! It lives in `gemba-core` because that crate is the leaf: it builds in seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const DOC: &str = "docs/ARCHITECTURE.md";
const BEGIN: &str = "<!-- deps:begin -->";
const END: &str = "<!-- deps:end -->";

type Deps = BTreeMap<String, BTreeSet<String>>;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Each workspace member with the workspace members among its normal dependencies.
fn manifest_deps() -> Deps {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
        ])
        .arg(workspace_root().join("Cargo.toml"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo:?} metadata: {e}"));
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let member_ids: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let members: Vec<&serde_json::Value> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| member_ids.contains(id)))
        .collect();
    let names: BTreeSet<String> = members
        .iter()
        .map(|p| p["name"].as_str().expect("package name").to_owned())
        .collect();
    members
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                // kind null: a normal dependency ("dev" and "build" are the others).
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str())
                .filter(|n| names.contains(*n))
                .map(str::to_owned)
                .collect();
            (p["name"].as_str().expect("package name").to_owned(), deps)
        })
        .collect()
}

/// The block between the markers: one `crate: dep, dep` or `crate: (none)` line per crate;
/// blank lines and code fences are ignored.
fn documented_deps(text: &str) -> Result<Deps, String> {
    let begin = text
        .find(BEGIN)
        .ok_or_else(|| format!("{DOC} has no {BEGIN} marker"))?;
    let after = &text[begin + BEGIN.len()..];
    let end = after
        .find(END)
        .ok_or_else(|| format!("{DOC} has no {END} marker after {BEGIN}"))?;
    if after[end..].contains(BEGIN) {
        return Err(format!("{DOC} has more than one {BEGIN} block"));
    }
    let mut deps = Deps::new();
    for line in after[..end].lines().map(str::trim) {
        if line.is_empty() || line.starts_with("```") {
            continue;
        }
        let (name, list) = line.split_once(':').ok_or_else(|| {
            format!("{DOC} deps block: `{line}` is not `crate: dep, dep` or `crate: (none)`")
        })?;
        let name = name.trim().to_owned();
        let list = list.trim();
        let mut set = BTreeSet::new();
        if list != "(none)" {
            for dep in list.split(',').map(str::trim) {
                if dep.is_empty() {
                    return Err(format!("{DOC} deps block: `{line}` has an empty entry"));
                }
                if !set.insert(dep.to_owned()) {
                    return Err(format!("{DOC} deps block: `{line}` names {dep} twice"));
                }
            }
        }
        if deps.insert(name.clone(), set).is_some() {
            return Err(format!("{DOC} deps block: two lines for {name}"));
        }
    }
    Ok(deps)
}

fn line(name: &str, deps: &BTreeSet<String>) -> String {
    if deps.is_empty() {
        format!("{name}: (none)")
    } else {
        let list: Vec<&str> = deps.iter().map(String::as_str).collect();
        format!("{name}: {}", list.join(", "))
    }
}

/// Every difference between the manifests and the document, as an instruction.
fn differences(manifests: &Deps, doc: &Deps) -> Vec<String> {
    let mut out = Vec::new();
    for (name, want) in manifests {
        match doc.get(name) {
            None => out.push(format!(
                "workspace crate {name} has no line; add `{}`",
                line(name, want)
            )),
            Some(have) if have != want => {
                let missing: Vec<&str> = want.difference(have).map(String::as_str).collect();
                let extra: Vec<&str> = have.difference(want).map(String::as_str).collect();
                out.push(format!(
                    "the line of {name} is wrong (missing: [{}], not a dependency: [{}]); write `{}`",
                    missing.join(", "),
                    extra.join(", "),
                    line(name, want)
                ));
            }
            Some(_) => {}
        }
    }
    for (name, have) in doc {
        if !manifests.contains_key(name) {
            out.push(format!(
                "`{}` names a crate that is not a workspace member; remove the line",
                line(name, have)
            ));
        }
    }
    out
}

#[test]
fn the_documented_dependencies_are_the_manifests() {
    let text = std::fs::read_to_string(workspace_root().join(DOC))
        .unwrap_or_else(|e| panic!("cannot read {DOC}: {e}"));
    let doc = documented_deps(&text).unwrap_or_else(|e| panic!("{e}"));
    let manifests = manifest_deps();
    assert!(
        manifests.len() >= 10,
        "cargo metadata listed only {} workspace crates",
        manifests.len()
    );
    let diff = differences(&manifests, &doc);
    assert!(
        diff.is_empty(),
        "{DOC}, the block between {BEGIN} and {END}, disagrees with the Cargo.toml files:\n- {}",
        diff.join("\n- ")
    );
}

#[test]
fn every_kind_of_difference_is_reported() {
    let set = |deps: &[&str]| {
        deps.iter()
            .map(|d| (*d).to_owned())
            .collect::<BTreeSet<_>>()
    };
    let doc = documented_deps(&format!(
        "text\n{BEGIN}\n```text\na: (none)\nb: a, c\nghost: a\n```\n{END}\nmore"
    ))
    .expect("a well-formed block");
    let manifests: Deps = [
        ("a".to_owned(), set(&[])),
        ("b".to_owned(), set(&["a", "d"])),
        ("new".to_owned(), set(&["a"])),
    ]
    .into_iter()
    .collect();
    let diff = differences(&manifests, &doc);
    assert_eq!(diff.len(), 3, "{diff:#?}");
    assert!(
        diff[0].contains("missing: [d], not a dependency: [c]") && diff[0].contains("`b: a, d`"),
        "{}",
        diff[0]
    );
    assert!(
        diff[1].contains("new has no line; add `new: a`"),
        "{}",
        diff[1]
    );
    assert!(diff[2].contains("`ghost: a` names a crate"), "{}", diff[2]);

    assert!(documented_deps("no markers").is_err());
    assert!(documented_deps(&format!("{BEGIN}\na: b\na: c\n{END}")).is_err());
    assert!(documented_deps(&format!("{BEGIN}\na b\n{END}")).is_err());
    assert!(documented_deps(&format!("{BEGIN}\na: b, b\n{END}")).is_err());
}
