//! The repository stands alone: no file of the project reads anything outside it.
//!
//! A fresh clone, with nothing beside it, must pass every test; `.ci/run` proves that by
//! running in such a clone. This test names the offending file and line sooner, on any
//! machine, when a path reaching out of the repository (to a sibling folder of reference
//! material, say) creeps into code, configuration or docs.

use std::path::{Path, PathBuf};

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name != ".ci" || name == "target" || name == "vendor" {
            continue;
        }
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn no_project_file_reaches_outside_the_repository() {
    // Built from parts so this file does not match itself.
    let sibling = format!("../{}/", "shared");
    let deep = format!("../../../{}", "shared");
    let mut files = Vec::new();
    walk(&repository_root(), &mut files);
    assert!(
        files.len() > 50,
        "walked only {} files: wrong root?",
        files.len()
    );
    let mut found = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue; // binary files
        };
        for (n, line) in text.lines().enumerate() {
            if line.contains(&sibling) || line.contains(&deep) {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "files that read outside the repository:\n{}",
        found.join("\n")
    );
}
