//! The ELF facts netbench needs, read with the `object` crate: the program interpreter
//! (`PT_INTERP`; a static or static-pie binary has none) and the `DT_NEEDED`,
//! `DT_RPATH` and `DT_RUNPATH` entries of the dynamic section, found through the
//! `PT_DYNAMIC` segment the way `ld.so` finds them (section headers may be stripped).
//! Only 64-bit little-endian files: the only kind the `x86_64` loader takes.
use std::path::Path;

use object::{
    LittleEndian,
    elf::{DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH, DT_STRTAB, ELFMAG, FileHeader64, PT_LOAD},
    read::{
        StringTable,
        elf::{Dyn as _, Dynamic, FileHeader as _, ProgramHeader as _},
    },
};

type Header = FileHeader64<LittleEndian>;
type Segment = object::elf::ProgramHeader64<LittleEndian>;

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    /// Not 64-bit little-endian, or a header points outside the file.
    #[error(transparent)]
    Malformed(#[from] object::read::Error),
    #[error("DT_NEEDED without DT_STRTAB")]
    NoStrtab,
    #[error("DT_STRTAB outside every PT_LOAD segment")]
    StrtabOutsideLoad,
}

/// What the program headers and the dynamic section of one ELF file say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DynamicInfo {
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    /// `DT_RPATH` directories (used only when there is no `DT_RUNPATH`).
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
}

fn segments(bytes: &[u8]) -> Result<&[Segment], ElfError> {
    if !bytes.starts_with(&ELFMAG) {
        return Err(ElfError::NotElf);
    }
    let header = Header::parse(bytes)?;
    Ok(header.program_headers(header.endian()?, bytes)?)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The interpreter (dynamic loader) the file asks for, or `None` when it is statically
/// linked.
///
/// # Errors
/// When `bytes` is not a 64-bit little-endian ELF file or its headers point outside it.
pub fn interpreter(bytes: &[u8]) -> Result<Option<String>, ElfError> {
    for segment in segments(bytes)? {
        if let Some(path) = segment.interpreter(LittleEndian, bytes)? {
            return Ok(Some(text(path)));
        }
    }
    Ok(None)
}

/// The file is an ELF executable without an interpreter (statically linked).
#[must_use]
pub fn is_static(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| matches!(interpreter(&bytes), Ok(None)))
}

/// The interpreter and the dynamic entries of the file.
///
/// # Errors
/// As [`interpreter`], and when the string table of the entries cannot be found.
pub fn dynamic_info(bytes: &[u8]) -> Result<DynamicInfo, ElfError> {
    let segments = segments(bytes)?;
    let mut info = DynamicInfo {
        interpreter: interpreter(bytes)?,
        ..DynamicInfo::default()
    };
    let mut dynamic = None;
    for segment in segments {
        dynamic = dynamic.or(segment.dynamic(LittleEndian, bytes)?);
    }
    let Some(dynamic) = dynamic else {
        return Ok(info);
    };
    let entries: Vec<Dynamic> = dynamic
        .iter()
        .map(|d| Dynamic {
            tag: d.tag(LittleEndian),
            val: d.val(LittleEndian),
        })
        .take_while(|d| d.tag != DT_NULL)
        .collect();
    let wanted = |d: &&Dynamic| matches!(d.tag, DT_NEEDED | DT_RPATH | DT_RUNPATH);
    if !entries.iter().any(|d| wanted(&d)) {
        return Ok(info);
    }
    let strtab = entries
        .iter()
        .find(|d| d.tag == DT_STRTAB)
        .ok_or(ElfError::NoStrtab)?
        .val;
    let strings = string_table(segments, bytes, strtab)?;
    for d in entries.iter().filter(wanted) {
        let s = text(d.string(&strings)?);
        match d.tag {
            DT_NEEDED => info.needed.push(s),
            DT_RPATH => info.rpath.extend(s.split(':').map(str::to_owned)),
            _ => info.runpath.extend(s.split(':').map(str::to_owned)),
        }
    }
    Ok(info)
}

/// The strings from address `strtab` to the end of the `PT_LOAD` segment holding it.
fn string_table<'a>(
    segments: &[Segment],
    bytes: &'a [u8],
    strtab: u64,
) -> Result<StringTable<'a>, ElfError> {
    let e = LittleEndian;
    segments
        .iter()
        .filter(|s| s.p_type(e) == PT_LOAD)
        .find(|s| (s.p_vaddr(e)..s.p_vaddr(e) + s.p_filesz(e)).contains(&strtab))
        .map(|s| {
            let start = strtab - s.p_vaddr(e) + s.p_offset(e);
            StringTable::new(bytes, start, s.p_offset(e) + s.p_filesz(e))
        })
        .ok_or(ElfError::StrtabOutsideLoad)
}

#[cfg(test)]
pub(crate) mod tests {
    use object::elf::{PT_DYNAMIC, PT_INTERP};

    use super::*;

    /// Where [`image`] puts its string table (after the ELF header and three program
    /// headers); an interpreter is its first string, at `STRTAB + 1`.
    const STRTAB: usize = 0x40 + 3 * 0x38;

    /// A minimal ELF64: one `PT_LOAD` covering the file at vaddr 0x1000, optionally a
    /// `PT_INTERP`, and a `PT_DYNAMIC` with `DT_NEEDED`/`DT_RUNPATH` entries.
    pub(crate) fn image(interp: Option<&str>, needed: &[&str], runpath: Option<&str>) -> Vec<u8> {
        let phnum = 3u16;
        let phoff = 0x40u64;
        let mut strtab = vec![0u8];
        let mut add = |s: &str| {
            let at = strtab.len() as u64;
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
            at
        };
        let interp_off_in_str = interp.map(&mut add);
        let mut dyns: Vec<(i64, u64)> = needed.iter().map(|n| (DT_NEEDED, add(n))).collect();
        if let Some(r) = runpath {
            dyns.push((DT_RUNPATH, add(r)));
        }
        let strtab_off = STRTAB as u64;
        let dyn_off = strtab_off + strtab.len() as u64;
        dyns.push((DT_STRTAB, 0x1000 + strtab_off));
        dyns.push((DT_NULL, 0));
        let total = dyn_off + dyns.len() as u64 * 16;
        let mut b = vec![0u8; usize::try_from(total).unwrap()];
        // Magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT.
        b[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        b[0x20..0x28].copy_from_slice(&phoff.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&phnum.to_le_bytes());
        let mut ph = |i: u64, kind: u32, offset: u64, vaddr: u64, size: u64| {
            let h = usize::try_from(phoff + i * 0x38).unwrap();
            b[h..h + 4].copy_from_slice(&kind.to_le_bytes());
            b[h + 8..h + 16].copy_from_slice(&offset.to_le_bytes());
            b[h + 16..h + 24].copy_from_slice(&vaddr.to_le_bytes());
            b[h + 32..h + 40].copy_from_slice(&size.to_le_bytes());
        };
        ph(0, PT_LOAD, 0, 0x1000, total);
        ph(
            1,
            PT_DYNAMIC,
            dyn_off,
            0x1000 + dyn_off,
            dyns.len() as u64 * 16,
        );
        if let (Some(i), Some(s)) = (interp_off_in_str, interp) {
            ph(2, PT_INTERP, strtab_off + i, 0, s.len() as u64 + 1);
        }
        b[STRTAB..STRTAB + strtab.len()].copy_from_slice(&strtab);
        for (i, (tag, val)) in dyns.iter().enumerate() {
            let at = usize::try_from(dyn_off).unwrap() + i * 16;
            b[at..at + 8].copy_from_slice(&tag.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&val.to_le_bytes());
        }
        b
    }

    #[test]
    fn static_and_dynamic() {
        // static-pie: PT_LOAD and PT_DYNAMIC but no loader.
        assert_eq!(
            interpreter(&image(None, &["libc.so.6"], None)).unwrap(),
            None
        );
        assert_eq!(
            interpreter(&image(Some("/lib64/ld-linux-x86-64.so.2"), &[], None)).unwrap(),
            Some("/lib64/ld-linux-x86-64.so.2".to_owned())
        );
    }

    #[test]
    fn reads_interpreter_needed_and_runpath() {
        let bytes = image(
            Some("/lib64/ld-linux-x86-64.so.2"),
            &["libm.so.6", "libc.so.6"],
            Some("$ORIGIN/../lib:/opt/x"),
        );
        let info = dynamic_info(&bytes).unwrap();
        assert_eq!(
            info.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(info.needed, ["libm.so.6", "libc.so.6"]);
        assert_eq!(info.runpath, ["$ORIGIN/../lib", "/opt/x"]);
        assert!(info.rpath.is_empty());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(interpreter(b"#!/bin/sh\n"), Err(ElfError::NotElf)));
        assert!(dynamic_info(b"#!/bin/sh\n").is_err());
        let whole = image(Some("/lib/ld-musl-x86_64.so.1"), &["libc.so"], None);
        assert!(interpreter(&whole[..0x30]).is_err());
        // The interpreter's path runs past the end.
        assert!(interpreter(&whole[..STRTAB + 4]).is_err());
        assert!(dynamic_info(&whole[..STRTAB + 4]).is_err());
        let mut big_endian = whole;
        big_endian[5] = 2;
        assert!(interpreter(&big_endian).is_err());
    }

    #[test]
    fn reads_this_test_binary() {
        // Whatever the test binary is, it parses.
        let exe = std::env::current_exe().unwrap();
        assert!(dynamic_info(&std::fs::read(&exe).unwrap()).is_ok());
        assert!(!is_static(Path::new("/nonexistent")));
    }
}
