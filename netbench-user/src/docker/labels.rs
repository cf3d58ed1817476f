//! Labels on everything netbench creates in Docker, and the filters that find it again.
//! Cleanup only ever touches objects that carry [`OWNER`]`=1`, and a run's own cleanup
//! only those that also carry its [`RUN`] id: the user's containers, networks and images
//! are never listed, let alone removed.
use std::collections::HashMap;

use super::{DockerError, api};

/// Every object netbench creates carries `netbench=1`.
pub const OWNER: &str = "netbench";
pub const OWNER_VALUE: &str = "1";
/// The run that created a container or network.
pub const RUN: &str = "netbench.run";
/// What the object is for (`server`, `client`, `agent-image`, `server-image`, ...).
pub const ROLE: &str = "netbench.role";
/// The content hash an image was built from.
pub const CONTENT: &str = "netbench.content";
/// Prefix of the alias (`IFLA_IFALIAS`) of host links netbench creates (macvlan parents).
pub const LINK_ALIAS_PREFIX: &str = "netbench run ";

/// Labels for an object of `run` with `role`.
#[must_use]
pub fn labels(run: &str, role: &str) -> HashMap<String, String> {
    HashMap::from([
        (OWNER.to_owned(), OWNER_VALUE.to_owned()),
        (RUN.to_owned(), run.to_owned()),
        (ROLE.to_owned(), role.to_owned()),
    ])
}

/// A Docker list filter (`{"label": [...]}`) for netbench's objects, of one run or all.
#[must_use]
pub fn filter(run: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut wanted = vec![format!("{OWNER}={OWNER_VALUE}")];
    if let Some(run) = run {
        wanted.push(format!("{RUN}={run}"));
    }
    HashMap::from([("label".to_owned(), wanted)])
}

/// Whether `labels` mark an object as netbench's (and `run`'s, when given). Checked
/// again on every listed object before removing it, so a daemon that ignored the
/// filter could still not make netbench remove someone else's object.
#[must_use]
pub fn is_owned<S: std::hash::BuildHasher>(
    labels: Option<&HashMap<String, String, S>>,
    run: Option<&str>,
) -> bool {
    let Some(labels) = labels else { return false };
    labels.get(OWNER).map(String::as_str) == Some(OWNER_VALUE)
        && run.is_none_or(|r| labels.get(RUN).map(String::as_str) == Some(r))
}

/// netbench's objects (of `run`, or of every run): what `list` returns when asked with
/// the label [`filter`], each checked again with [`is_owned`] on its `labels_of`.
///
/// # Errors
/// When the daemon cannot list `what`.
pub async fn list_owned<T, Fut>(
    what: &str,
    run: Option<&str>,
    list: impl FnOnce(HashMap<String, Vec<String>>) -> Fut,
    labels_of: impl Fn(&T) -> Option<&HashMap<String, String>>,
) -> Result<Vec<T>, DockerError>
where
    Fut: Future<Output = Result<Vec<T>, bollard::errors::Error>>,
{
    let listed = list(filter(run))
        .await
        .map_err(api(format!("listing {what}")))?;
    Ok(listed
        .into_iter()
        .filter(|o| is_owned(labels_of(o), run))
        .collect())
}

/// A new run id: 8 hex digits from the kernel's random source (time and pid if that
/// cannot be read).
#[must_use]
pub fn new_run_id() -> String {
    let mut bytes = [0u8; 4];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if random.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        bytes = (t ^ std::process::id().rotate_left(16)).to_le_bytes();
    }
    hex(&bytes)
}

/// Lower-case hex of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The alias netbench gives host links it creates for `run`.
#[must_use]
pub fn link_alias(run: &str) -> String {
    format!("{LINK_ALIAS_PREFIX}{run}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_name_the_owner_and_optionally_the_run() {
        assert_eq!(
            filter(None),
            HashMap::from([("label".to_owned(), vec!["netbench=1".to_owned()])])
        );
        assert_eq!(
            filter(Some("ab12cd34"))["label"],
            vec!["netbench=1", "netbench.run=ab12cd34"]
        );
    }

    #[test]
    fn ownership_needs_the_owner_label_and_the_right_run() {
        let ours = labels("r1", "server");
        assert!(is_owned(Some(&ours), None));
        assert!(is_owned(Some(&ours), Some("r1")));
        assert!(!is_owned(Some(&ours), Some("r2")));
        assert!(!is_owned::<std::hash::RandomState>(None, None));
        let users = HashMap::from([("netbench".to_owned(), "yes".to_owned())]);
        assert!(!is_owned(Some(&users), None));
        assert!(!is_owned(Some(&HashMap::new()), None));
    }

    #[test]
    fn run_ids_are_8_hex_digits() {
        let id = new_run_id();
        assert_eq!(id.len(), 8);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(link_alias("x"), "netbench run x");
    }
}
