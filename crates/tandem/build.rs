//! Build script: records the git commit the binary is built from, for `tandem --version`.
//!
//! `TANDEM_GIT_COMMIT` in the environment wins (packagers building from a tarball set it);
//! otherwise `git rev-parse --short HEAD`; otherwise `unknown`. Nothing here may fail the
//! build: a source tarball has no `.git`, and a machine may have no `git` at all.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TANDEM_GIT_COMMIT");
    let commit = match std::env::var("TANDEM_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => {
            // Rebuild when HEAD moves: HEAD itself (a branch switch) and the branch's ref (a
            // commit). Only files that exist are named: a missing one would rerun every build.
            for path in [
                git(&["rev-parse", "--git-path", "HEAD"]),
                git(&["symbolic-ref", "-q", "HEAD"])
                    .and_then(|r| git(&["rev-parse", "--git-path", &r])),
                git(&["rev-parse", "--git-path", "packed-refs"]),
            ]
            .into_iter()
            .flatten()
            {
                let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(&path);
                if p.exists() {
                    println!("cargo:rerun-if-changed={}", p.display());
                }
            }
            git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
        }
    };
    println!("cargo:rustc-env=TANDEM_GIT_COMMIT={commit}");
}
