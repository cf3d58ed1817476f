//! Just enough ELF to tell a static binary from a dynamic one: a dynamically linked
//! executable names its loader in a `PT_INTERP` program header; a static (or static-pie)
//! one has none.

use std::{fs, path::Path};

use anyhow::{Context as _, Result, ensure};

const PT_INTERP: u32 = 3;

/// Whether the ELF executable at `path` is statically linked.
pub fn is_static(path: &Path) -> Result<bool> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let interp = has_interp(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    Ok(!interp)
}

/// Scans the program headers of a 64-bit little-endian ELF image for `PT_INTERP`.
fn has_interp(elf: &[u8]) -> Result<bool> {
    ensure!(elf.starts_with(b"\x7fELF"), "not an ELF file");
    ensure!(
        elf.get(4) == Some(&2) && elf.get(5) == Some(&1),
        "not a 64-bit little-endian ELF file"
    );
    let phoff = usize::try_from(u64::from_le_bytes(field(elf, 0x20)?))?;
    let phentsize = usize::from(u16::from_le_bytes(field(elf, 0x36)?));
    let phnum = usize::from(u16::from_le_bytes(field(elf, 0x38)?));
    for index in 0..phnum {
        let p_type = u32::from_le_bytes(field(elf, phoff + index * phentsize)?);
        if p_type == PT_INTERP {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `N` bytes at `offset`, or an error when the file is too short.
fn field<const N: usize>(elf: &[u8], offset: usize) -> Result<[u8; N]> {
    elf.get(offset..offset + N)
        .and_then(|bytes| bytes.try_into().ok())
        .with_context(|| format!("truncated ELF: no {N} bytes at offset {offset:#x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF header followed by program headers of the given types.
    fn image(program_header_types: &[u32]) -> Vec<u8> {
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        let count = u16::try_from(program_header_types.len()).unwrap();
        elf[0x38..0x3a].copy_from_slice(&count.to_le_bytes());
        for p_type in program_header_types {
            let mut header = [0u8; 56];
            header[..4].copy_from_slice(&p_type.to_le_bytes());
            elf.extend_from_slice(&header);
        }
        elf
    }

    #[test]
    fn finds_interp_among_program_headers() {
        assert!(has_interp(&image(&[6, PT_INTERP, 1])).unwrap());
        // static-pie: PT_LOAD and PT_DYNAMIC but no loader
        assert!(!has_interp(&image(&[1, 2, 1])).unwrap());
    }

    #[test]
    fn rejects_non_elf_and_truncated_input() {
        assert!(has_interp(b"#!/bin/sh\n").is_err());
        let mut truncated = image(&[1, 1]);
        truncated.truncate(100);
        assert!(has_interp(&truncated).is_err());
    }

    #[test]
    fn this_test_binary_is_dynamic() {
        let me = std::env::current_exe().unwrap();
        assert!(!is_static(&me).unwrap());
    }
}
