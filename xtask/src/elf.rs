//! Is a binary static? A dynamically linked executable names its loader in a
//! `PT_INTERP` program header; a static (or static-pie) one has none. The headers are
//! read with `object`, as netbench-user's `elf` module does (xtask builds netbench-user,
//! so it cannot use that module).

use std::{fs, path::Path};

use anyhow::{Context as _, Result};
use object::{
    LittleEndian,
    elf::{FileHeader64, PT_INTERP},
    read::elf::{FileHeader as _, ProgramHeader as _},
};

/// Whether the ELF executable at `path` is statically linked.
pub fn is_static(path: &Path) -> Result<bool> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let interp = has_interp(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    Ok(!interp)
}

/// Whether a 64-bit little-endian ELF image has a `PT_INTERP` program header.
fn has_interp(elf: &[u8]) -> Result<bool> {
    let header = FileHeader64::<LittleEndian>::parse(elf)?;
    let endian = header.endian()?;
    let segments = header.program_headers(endian, elf)?;
    Ok(segments.iter().any(|p| p.p_type(endian) == PT_INTERP))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF header followed by program headers of the given types.
    fn image(program_header_types: &[u32]) -> Vec<u8> {
        let mut elf = vec![0u8; 64];
        // Magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT.
        elf[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
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
        let mut big_endian = image(&[PT_INTERP]);
        big_endian[5] = 2;
        assert!(has_interp(&big_endian).is_err());
    }

    #[test]
    fn this_test_binary_is_dynamic() {
        let me = std::env::current_exe().unwrap();
        assert!(!is_static(&me).unwrap());
    }
}
