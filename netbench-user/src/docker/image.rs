//! Images netbench builds itself, `FROM scratch`, through the API with a tar build
//! context: nothing is ever pulled. Each image is tagged by the hash of its context, so
//! it is rebuilt only when its content (the agent, stress-ng, a library) changes.
use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};

use super::{DockerError, Engine, api, labels};

/// Repository names (tags are content hashes).
pub const AGENT_REPO: &str = "netbench-agent";
pub const SERVER_REPO: &str = "netbench-agent-stress";
/// Paths inside the images.
pub const AGENT_PATH: &str = "/netbench-agent";
pub const STRESS_PATH: &str = "/usr/bin/stress-ng";

const BUILD_TIMEOUT: Duration = Duration::from_mins(5);

/// One file of an image's root file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFile {
    /// Absolute path inside the image.
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// An image to build from scratch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSpec {
    pub repo: &'static str,
    /// `netbench.role` label value.
    pub role: &'static str,
    pub files: Vec<ImageFile>,
    /// Extra empty directories (with mode), e.g. `/tmp`.
    pub dirs: Vec<(String, u32)>,
    pub env: Vec<(String, String)>,
}

impl ImageSpec {
    /// The Dockerfile of the build context.
    #[must_use]
    pub fn dockerfile(&self) -> String {
        let mut d = String::from("FROM scratch\nCOPY rootfs/ /\n");
        for (k, v) in &self.env {
            let _ = writeln!(d, "ENV {k}={v}");
        }
        d
    }

    /// The build context: `Dockerfile` plus `rootfs/...`, deterministic (sorted, mtime
    /// 0, owner 0:0), so equal content gives equal bytes and an equal hash.
    ///
    /// # Errors
    /// When a path cannot be stored in a tar header.
    pub fn context_tar(&self) -> std::io::Result<Vec<u8>> {
        let parents = |p: &str| {
            let mut out = Vec::new();
            let mut cur = Path::new(p).parent();
            while let Some(d) = cur {
                if d != Path::new("/") && !d.as_os_str().is_empty() {
                    out.push(d.to_string_lossy().into_owned());
                }
                cur = d.parent();
            }
            out
        };
        // Directory -> mode; explicit directories keep their own mode.
        let mut dirs: BTreeMap<String, u32> = BTreeMap::new();
        for p in self
            .files
            .iter()
            .map(|f| f.path.as_str())
            .chain(self.dirs.iter().map(|d| d.0.as_str()))
        {
            for d in parents(p) {
                dirs.entry(d).or_insert(0o755);
            }
        }
        for (d, mode) in &self.dirs {
            dirs.insert(d.trim_end_matches('/').to_owned(), *mode);
        }
        let mut b = tar::Builder::new(Vec::new());
        let header = |kind: tar::EntryType, mode: u32, size: u64| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(size);
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            h
        };
        let dockerfile = self.dockerfile();
        let mut h = header(tar::EntryType::Regular, 0o644, dockerfile.len() as u64);
        b.append_data(&mut h, "Dockerfile", dockerfile.as_bytes())?;
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, "rootfs/", std::io::empty())?;
        for (d, mode) in &dirs {
            let mut h = header(tar::EntryType::Directory, *mode, 0);
            b.append_data(
                &mut h,
                format!("rootfs{}/", d.trim_end_matches('/')),
                std::io::empty(),
            )?;
        }
        let mut files: Vec<&ImageFile> = self.files.iter().collect();
        files.sort_by(|a, c| a.path.cmp(&c.path));
        for f in files {
            let mut h = header(tar::EntryType::Regular, f.mode, f.data.len() as u64);
            b.append_data(&mut h, format!("rootfs{}", f.path), f.data.as_slice())?;
        }
        b.into_inner()
    }

    /// The tag: repository plus the first 16 hex digits of the context's SHA-256.
    #[must_use]
    pub fn tag_for(&self, context: &[u8]) -> (String, String) {
        let hash = labels::hex(&Sha256::digest(context));
        let short = hash[..16].to_owned();
        (format!("{}:{short}", self.repo), hash)
    }
}

/// The agent image: the static `netbench-agent` alone.
///
/// # Errors
/// When the agent is not a static binary or cannot be read.
pub fn agent_spec(agent: &Path) -> Result<ImageSpec, DockerError> {
    Ok(ImageSpec {
        repo: AGENT_REPO,
        role: "agent-image",
        files: vec![agent_file(agent)?],
        dirs: vec![("/tmp".to_owned(), 0o1777)],
        env: Vec::new(),
    })
}

fn agent_file(agent: &Path) -> Result<ImageFile, DockerError> {
    if !crate::elf::is_static(agent) {
        return Err(DockerError::Image(format!(
            "{} is not a static binary: build it with `cargo xtask build`",
            agent.display()
        )));
    }
    let data = std::fs::read(agent).map_err(|err| DockerError::File {
        path: agent.to_path_buf(),
        source: err,
    })?;
    Ok(ImageFile {
        path: AGENT_PATH.to_owned(),
        mode: 0o755,
        data,
    })
}

/// The server image: the agent plus stress-ng, its shared libraries and the loader.
///
/// # Errors
/// When a file cannot be read or a library cannot be found.
pub fn server_spec(agent: &Path, stress_ng: &Path) -> Result<ImageSpec, DockerError> {
    let closure = super::libs::host_closure(stress_ng).map_err(DockerError::Libraries)?;
    let read = |p: &Path| {
        std::fs::read(p).map_err(|err| DockerError::File {
            path: p.to_path_buf(),
            source: err,
        })
    };
    let mut files = vec![
        agent_file(agent)?,
        ImageFile {
            path: STRESS_PATH.to_owned(),
            mode: 0o755,
            data: read(stress_ng)?,
        },
    ];
    if let Some(interp) = &closure.interpreter {
        files.push(ImageFile {
            path: interp.to_string_lossy().into_owned(),
            mode: 0o755,
            data: read(interp)?,
        });
    }
    for path in closure.libraries.values() {
        // Under the name the loader asks for, with the (symlink-resolved) content.
        files.push(ImageFile {
            path: path.to_string_lossy().into_owned(),
            mode: 0o644,
            data: read(path)?,
        });
    }
    files.dedup_by(|a, b| a.path == b.path);
    Ok(ImageSpec {
        repo: SERVER_REPO,
        role: "server-image",
        files,
        dirs: vec![("/tmp".to_owned(), 0o1777)],
        env: vec![(
            "LD_LIBRARY_PATH".to_owned(),
            closure.library_dirs().join(":"),
        )],
    })
}

/// `stress-ng` on this host's `PATH`, if installed.
#[must_use]
pub fn find_stress_ng() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("stress-ng"))
        .find(|p| p.is_file())
}

/// An image that exists in the engine.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BuiltImage {
    pub tag: String,
    /// Full SHA-256 of the build context.
    pub content: String,
    /// False when an image with this content was already there.
    pub built: bool,
    pub context_bytes: usize,
}

/// Make sure the image of `spec` exists: reuse it when its tag is there with the same
/// content label, build it otherwise, then remove older netbench images of the same
/// repository (best effort: one in use stays).
///
/// # Errors
/// When the context cannot be made or the build fails.
pub async fn ensure(engine: &Engine, spec: &ImageSpec) -> Result<BuiltImage, DockerError> {
    let tar = spec.context_tar().map_err(|source| DockerError::Context {
        repo: spec.repo.to_owned(),
        source,
    })?;
    let (tag, content) = spec.tag_for(&tar);
    let context_bytes = tar.len();
    if let Ok(found) = engine.docker.inspect_image(&tag).await {
        let same = found
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(labels::CONTENT))
            == Some(&content);
        if same {
            return Ok(BuiltImage {
                tag,
                content,
                built: false,
                context_bytes,
            });
        }
    }
    let image_labels = HashMap::from([
        (labels::OWNER.to_owned(), labels::OWNER_VALUE.to_owned()),
        (labels::ROLE.to_owned(), spec.role.to_owned()),
        (labels::CONTENT.to_owned(), content.clone()),
    ]);
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(&tag)
        .rm(true)
        .forcerm(true)
        .labels(&image_labels)
        .build();
    let build = async {
        let mut stream =
            engine
                .docker
                .build_image(options, None, Some(bollard::body_full(tar.into())));
        while let Some(item) = stream.next().await {
            item.map_err(api(format!("building image {tag}")))?;
        }
        Ok::<(), DockerError>(())
    };
    tokio::time::timeout(BUILD_TIMEOUT, build)
        .await
        .map_err(|_| DockerError::Timeout {
            what: format!("building image {tag}"),
            secs: BUILD_TIMEOUT.as_secs(),
        })??;
    engine
        .docker
        .inspect_image(&tag)
        .await
        .map_err(api(format!("image {tag} after its build")))?;
    remove_stale(engine, spec.repo, &tag).await;
    Ok(BuiltImage {
        tag,
        content,
        built: true,
        context_bytes,
    })
}

/// Remove netbench's images of `repo` other than `keep`; failures (in use) are ignored.
async fn remove_stale(engine: &Engine, repo: &str, keep: &str) {
    let Ok(images) = list(engine).await else {
        return;
    };
    for (id, tags) in images {
        let is_repo = tags
            .iter()
            .any(|t| t.split_once(':').is_some_and(|(r, _)| r == repo));
        if is_repo && !tags.iter().any(|t| t == keep) {
            let _ = engine
                .docker
                .remove_image(
                    &id,
                    None::<bollard::query_parameters::RemoveImageOptions>,
                    None,
                )
                .await;
        }
    }
}

/// netbench's images: (id, tags), found by label and checked again.
///
/// # Errors
/// When the engine cannot list images.
pub async fn list(engine: &Engine) -> Result<Vec<(String, Vec<String>)>, DockerError> {
    let images = labels::list_owned(
        "images",
        None,
        |filter| {
            let options = ListImagesOptionsBuilder::default().filters(&filter).build();
            engine.docker.list_images(Some(options))
        },
        |i| Some(&i.labels),
    )
    .await?;
    Ok(images.into_iter().map(|i| (i.id, i.repo_tags)).collect())
}

/// Remove every netbench image (`netbench cleanup --images`); returns the tags removed.
///
/// # Errors
/// When the engine cannot list images; images it refuses to remove are reported.
pub async fn remove_all(engine: &Engine) -> Result<Vec<String>, DockerError> {
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    for (id, tags) in list(engine).await? {
        let options = RemoveImageOptionsBuilder::default().force(true).build();
        match engine.docker.remove_image(&id, Some(options), None).await {
            Ok(_) => {
                if tags.is_empty() {
                    removed.push(id);
                } else {
                    removed.extend(tags);
                }
            }
            Err(e) => failed.push(format!("{id}: {e}")),
        }
    }
    if failed.is_empty() {
        Ok(removed)
    } else {
        Err(DockerError::Image(format!(
            "could not remove images: {}",
            failed.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ImageSpec {
        ImageSpec {
            repo: "netbench-test",
            role: "test-image",
            files: vec![
                ImageFile {
                    path: "/usr/bin/tool".into(),
                    mode: 0o755,
                    data: b"tool".to_vec(),
                },
                ImageFile {
                    path: "/a".into(),
                    mode: 0o644,
                    data: b"a".to_vec(),
                },
            ],
            dirs: vec![("/tmp".into(), 0o1777)],
            env: vec![("LD_LIBRARY_PATH".into(), "/lib/x".into())],
        }
    }

    #[test]
    fn context_holds_dockerfile_rootfs_and_parents_with_modes() {
        let tar_bytes = spec().context_tar().unwrap();
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let entries: Vec<(String, u32, u64, Vec<u8>)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let mode = e.header().mode().unwrap();
                let mtime = e.header().mtime().unwrap();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut data).unwrap();
                (path, mode, mtime, data)
            })
            .collect();
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "Dockerfile",
                "rootfs/",
                "rootfs/tmp/",
                "rootfs/usr/",
                "rootfs/usr/bin/",
                "rootfs/a",
                "rootfs/usr/bin/tool"
            ]
        );
        assert_eq!(
            String::from_utf8(entries[0].3.clone()).unwrap(),
            "FROM scratch\nCOPY rootfs/ /\nENV LD_LIBRARY_PATH=/lib/x\n"
        );
        assert_eq!(entries[2].1, 0o1777);
        assert_eq!(entries[6].1, 0o755);
        assert_eq!(entries[6].3, b"tool");
        assert!(entries.iter().all(|e| e.2 == 0));
    }

    #[test]
    fn tag_is_a_content_hash() {
        let a = spec();
        let ctx = a.context_tar().unwrap();
        // Deterministic: the same content gives the same bytes and tag.
        assert_eq!(ctx, a.context_tar().unwrap());
        let (tag, full) = a.tag_for(&ctx);
        assert_eq!(tag, format!("netbench-test:{}", &full[..16]));
        assert_eq!(full.len(), 64);
        let mut b = spec();
        b.files[0].data = b"tool v2".to_vec();
        let (tag_b, _) = b.tag_for(&b.context_tar().unwrap());
        assert_ne!(tag, tag_b);
        // File order does not matter.
        let mut c = spec();
        c.files.reverse();
        assert_eq!(c.tag_for(&c.context_tar().unwrap()).0, tag);
    }
}
