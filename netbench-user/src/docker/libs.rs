//! The shared libraries a dynamically linked program needs, found the way `ld.so` finds
//! them: each ELF file's `DT_NEEDED` entries, searched in its `DT_RPATH`/`DT_RUNPATH`,
//! the directories of `/etc/ld.so.conf` and the loader's defaults, recursively; plus the
//! program interpreter (`PT_INTERP`). No `ldd`: it runs the loader on the binary.
use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    path::{Path, PathBuf},
};

use crate::elf::{DynamicInfo, ElfError, dynamic_info};

/// Where `ld.so` looks last (`x86_64` Debian/Ubuntu and other distributions).
pub const DEFAULT_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

#[derive(Debug, thiserror::Error)]
pub enum LibsError {
    #[error("{path}")]
    Elf {
        path: PathBuf,
        #[source]
        source: ElfError,
    },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{needed} (needed by {by}) not found in {dirs}")]
    NotFound {
        needed: String,
        by: PathBuf,
        dirs: String,
    },
}

/// The directories of an `ld.so.conf` file, following `include` lines (with `*`
/// globs in the file name part, as Debian uses them). `read` returns a file's text.
#[must_use]
pub fn ld_so_conf_dirs(
    path: &Path,
    read: &dyn Fn(&Path) -> Option<String>,
    list: &dyn Fn(&Path) -> Vec<PathBuf>,
) -> Vec<String> {
    let mut out = Vec::new();
    conf_dirs_into(path, read, list, &mut out, 0);
    out
}

fn conf_dirs_into(
    path: &Path,
    read: &dyn Fn(&Path) -> Option<String>,
    list: &dyn Fn(&Path) -> Vec<PathBuf>,
    out: &mut Vec<String>,
    depth: u32,
) {
    if depth > 8 {
        return;
    }
    let Some(text) = read(path) else { return };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        if let Some(pattern) = line.strip_prefix("include") {
            let pattern = pattern.trim();
            let pattern = if Path::new(pattern).is_absolute() {
                PathBuf::from(pattern)
            } else {
                path.parent().unwrap_or(Path::new("/")).join(pattern)
            };
            for file in glob_files(&pattern, list) {
                conf_dirs_into(&file, read, list, out, depth + 1);
            }
        } else if line.starts_with('/') && !out.iter().any(|d| d == line) {
            out.push(line.to_owned());
        }
    }
}

/// Files matching `pattern` whose last component may hold `*` wildcards, sorted.
fn glob_files(pattern: &Path, list: &dyn Fn(&Path) -> Vec<PathBuf>) -> Vec<PathBuf> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains('*') {
        return vec![pattern.to_path_buf()];
    }
    let dir = pattern.parent().unwrap_or(Path::new("/"));
    let mut files: Vec<PathBuf> = list(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| wildcard_match(&name, &n.to_string_lossy()))
        })
        .collect();
    files.sort();
    files
}

/// `*`-only wildcard matching.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(at) = rest.find(part) {
            rest = &rest[at + part.len()..];
        } else {
            return false;
        }
    }
    rest.is_empty()
}

/// Everything a program needs to run in an empty root file system.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Closure {
    /// The ELF interpreter as the program names it (`/lib64/ld-linux-x86-64.so.2`).
    pub interpreter: Option<PathBuf>,
    /// Libraries by the path the loader will find them under (directory it was found in
    /// plus the `DT_NEEDED` name).
    pub libraries: BTreeMap<String, PathBuf>,
}

impl Closure {
    /// The directories of the libraries, in first-found order without repeats: the
    /// `LD_LIBRARY_PATH` that makes a loader without `ld.so.cache` find them.
    #[must_use]
    pub fn library_dirs(&self) -> Vec<String> {
        let mut dirs: Vec<String> = Vec::new();
        for path in self.libraries.values() {
            if let Some(d) = path.parent().map(|d| d.to_string_lossy().into_owned())
                && !dirs.contains(&d)
            {
                dirs.push(d);
            }
        }
        dirs
    }
}

/// Resolve every library `program` needs, recursively. `read` returns a file's bytes
/// (following symlinks), `None` when there is no such file.
///
/// # Errors
/// When a file is not ELF or a needed library is nowhere on the search path.
pub fn closure(
    program: &Path,
    search_dirs: &[String],
    read: &dyn Fn(&Path) -> Option<Vec<u8>>,
) -> Result<Closure, LibsError> {
    let bytes = read(program).ok_or_else(|| LibsError::Io {
        path: program.to_path_buf(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let info = dynamic_info(&bytes).map_err(|source| LibsError::Elf {
        path: program.to_path_buf(),
        source,
    })?;
    let mut out = Closure {
        interpreter: info.interpreter.as_ref().map(PathBuf::from),
        libraries: BTreeMap::new(),
    };
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<(PathBuf, DynamicInfo)> = VecDeque::from([(program.into(), info)]);
    while let Some((by, info)) = queue.pop_front() {
        let origin = by.parent().map(|p| p.to_string_lossy().into_owned());
        let expand = |d: &String| match &origin {
            Some(o) => d.replace("$ORIGIN", o).replace("${ORIGIN}", o),
            None => d.clone(),
        };
        let mut dirs: Vec<String> = if info.runpath.is_empty() {
            info.rpath.iter().map(expand).collect()
        } else {
            Vec::new()
        };
        dirs.extend(info.runpath.iter().map(expand));
        dirs.extend(search_dirs.iter().cloned());
        for needed in &info.needed {
            if !seen.insert(needed.clone()) {
                continue;
            }
            // A name with a slash is a path; otherwise the first 64-bit ELF on the path.
            let candidates: Vec<PathBuf> = if needed.contains('/') {
                vec![PathBuf::from(needed)]
            } else {
                dirs.iter().map(|d| Path::new(d).join(needed)).collect()
            };
            let found = candidates.into_iter().find_map(|path| {
                let bytes = read(&path)?;
                let info = dynamic_info(&bytes).ok()?;
                Some((path, info))
            });
            let Some((path, lib_info)) = found else {
                return Err(LibsError::NotFound {
                    needed: needed.clone(),
                    by: by.clone(),
                    dirs: dirs.join(":"),
                });
            };
            out.libraries.insert(needed.clone(), path.clone());
            queue.push_back((path, lib_info));
        }
    }
    Ok(out)
}

/// The search path of this host's loader: `/etc/ld.so.conf` (with includes), then
/// [`DEFAULT_DIRS`].
#[must_use]
pub fn host_search_dirs() -> Vec<String> {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let list = |p: &Path| {
        std::fs::read_dir(p)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let mut dirs = ld_so_conf_dirs(Path::new("/etc/ld.so.conf"), &read, &list);
    for d in DEFAULT_DIRS {
        if !dirs.iter().any(|x| x == d) {
            dirs.push((*d).to_owned());
        }
    }
    dirs
}

/// [`closure`] of `program` on this host.
///
/// # Errors
/// As [`closure`].
pub fn host_closure(program: &Path) -> Result<Closure, LibsError> {
    closure(program, &host_search_dirs(), &|p| std::fs::read(p).ok())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::elf::tests::image as elf;

    #[test]
    fn closure_is_recursive_deduplicated_and_prefers_the_first_dir() {
        let fs: HashMap<PathBuf, Vec<u8>> = HashMap::from([
            (
                "/usr/bin/tool".into(),
                elf(Some("/lib64/ld.so"), &["liba.so.1", "libc.so.6"], None),
            ),
            (
                "/usr/local/lib/liba.so.1".into(),
                elf(None, &["libc.so.6"], None),
            ),
            (
                "/lib/x86_64-linux-gnu/liba.so.1".into(),
                elf(None, &[], None),
            ),
            (
                "/lib/x86_64-linux-gnu/libc.so.6".into(),
                elf(None, &[], None),
            ),
            // Not ELF64: skipped like ld.so skips a wrong-class library.
            ("/usr/local/lib/libc.so.6".into(), b"junk".to_vec()),
        ]);
        let dirs = vec![
            "/usr/local/lib".to_owned(),
            "/lib/x86_64-linux-gnu".to_owned(),
        ];
        let c = closure(Path::new("/usr/bin/tool"), &dirs, &|p| fs.get(p).cloned()).unwrap();
        assert_eq!(c.interpreter, Some(PathBuf::from("/lib64/ld.so")));
        assert_eq!(
            c.libraries,
            BTreeMap::from([
                (
                    "liba.so.1".to_owned(),
                    PathBuf::from("/usr/local/lib/liba.so.1")
                ),
                (
                    "libc.so.6".to_owned(),
                    PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6")
                ),
            ])
        );
        assert_eq!(
            c.library_dirs(),
            ["/usr/local/lib", "/lib/x86_64-linux-gnu"]
        );
        let missing = closure(Path::new("/usr/bin/tool"), &dirs[..1], &|p| {
            fs.get(p).cloned()
        });
        assert!(
            matches!(missing, Err(LibsError::NotFound { needed, .. }) if needed == "libc.so.6")
        );
    }

    #[test]
    fn ld_so_conf_follows_includes_with_globs() {
        let files: HashMap<PathBuf, String> = HashMap::from([
            (
                "/etc/ld.so.conf".into(),
                "include /etc/ld.so.conf.d/*.conf\n# comment\n/opt/lib\n".to_owned(),
            ),
            (
                "/etc/ld.so.conf.d/b.conf".into(),
                "/b\n/a # dup\n".to_owned(),
            ),
            ("/etc/ld.so.conf.d/a.conf".into(), "/a\n".to_owned()),
            ("/etc/ld.so.conf.d/x.txt".into(), "/never\n".to_owned()),
        ]);
        let read = |p: &Path| files.get(p).cloned();
        let list = |d: &Path| {
            files
                .keys()
                .filter(|p| p.parent() == Some(d))
                .cloned()
                .collect()
        };
        assert_eq!(
            ld_so_conf_dirs(Path::new("/etc/ld.so.conf"), &read, &list),
            ["/a", "/b", "/opt/lib"]
        );
        assert!(wildcard_match("*.conf", "x.conf"));
        assert!(!wildcard_match("*.conf", "x.conf.bak"));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
    }

    #[test]
    fn resolves_a_real_dynamic_binary_on_this_host() {
        // Any dynamically linked system binary works; skip loudly where there is none.
        let Some(bin) = ["/usr/bin/stress-ng", "/bin/ls", "/usr/bin/env"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.is_file())
        else {
            eprintln!("SKIP: no dynamically linked binary found on this host");
            return;
        };
        let c = host_closure(bin).unwrap();
        assert!(c.interpreter.is_some(), "{}", bin.display());
        assert!(c.libraries.contains_key("libc.so.6"), "{c:?}");
    }
}
