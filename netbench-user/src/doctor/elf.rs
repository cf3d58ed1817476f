//! Just enough ELF to tell a static binary from a dynamically linked one: a
//! `PT_INTERP` program header names the dynamic loader the binary needs.

const PT_INTERP: u32 = 3;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;

/// The interpreter (dynamic loader) a 64-bit little-endian ELF file asks for, or `None`
/// when it is statically linked.
///
/// # Errors
/// When `bytes` is not such an ELF file, or its headers point outside it.
pub(crate) fn interpreter(bytes: &[u8]) -> Result<Option<String>, String> {
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("not an ELF file".to_owned());
    }
    if bytes.get(4) != Some(&ELFCLASS64) || bytes.get(5) != Some(&ELFDATA2LSB) {
        return Err("not a 64-bit little-endian ELF file".to_owned());
    }
    let phoff = read_u64(bytes, 0x20)?;
    let phentsize = u64::from(read_u16(bytes, 0x36)?);
    let phnum = read_u16(bytes, 0x38)?;
    for index in 0..u64::from(phnum) {
        let header = phoff + index * phentsize;
        if read_u32(bytes, header)? != PT_INTERP {
            continue;
        }
        let offset = read_u64(bytes, header + 0x08)?;
        let size = read_u64(bytes, header + 0x20)?;
        let path = slice(bytes, offset, size)?;
        let path = path.split(|&b| b == 0).next().unwrap_or_default();
        return Ok(Some(String::from_utf8_lossy(path).into_owned()));
    }
    Ok(None)
}

fn slice(bytes: &[u8], offset: u64, len: u64) -> Result<&[u8], String> {
    let start = usize::try_from(offset).map_err(|_| "offset out of range".to_owned())?;
    let len = usize::try_from(len).map_err(|_| "length out of range".to_owned())?;
    start
        .checked_add(len)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| format!("ELF header points past the end of the file ({offset:#x}+{len})"))
}

fn read_u16(bytes: &[u8], offset: u64) -> Result<u16, String> {
    Ok(u16::from_le_bytes(
        slice(bytes, offset, 2)?
            .try_into()
            .map_err(|_| "short read".to_owned())?,
    ))
}

fn read_u32(bytes: &[u8], offset: u64) -> Result<u32, String> {
    Ok(u32::from_le_bytes(
        slice(bytes, offset, 4)?
            .try_into()
            .map_err(|_| "short read".to_owned())?,
    ))
}

fn read_u64(bytes: &[u8], offset: u64) -> Result<u64, String> {
    Ok(u64::from_le_bytes(
        slice(bytes, offset, 8)?
            .try_into()
            .map_err(|_| "short read".to_owned())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 image: header, `phnum` program headers at 0x40, then `interp`.
    fn image(interp: Option<&str>) -> Vec<u8> {
        let mut b = vec![0u8; 0x40 + 2 * 0x38];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = ELFCLASS64;
        b[5] = ELFDATA2LSB;
        b[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        // First program header: PT_LOAD (1).
        b[0x40..0x44].copy_from_slice(&1u32.to_le_bytes());
        if let Some(path) = interp {
            let at = b.len() as u64;
            let second = 0x40 + 0x38;
            b[second..second + 4].copy_from_slice(&PT_INTERP.to_le_bytes());
            b[second + 0x08..second + 0x10].copy_from_slice(&at.to_le_bytes());
            b[second + 0x20..second + 0x28].copy_from_slice(&(path.len() as u64 + 1).to_le_bytes());
            b.extend_from_slice(path.as_bytes());
            b.push(0);
        }
        b
    }

    #[test]
    fn static_and_dynamic() {
        assert_eq!(interpreter(&image(None)), Ok(None));
        assert_eq!(
            interpreter(&image(Some("/lib64/ld-linux-x86-64.so.2"))),
            Ok(Some("/lib64/ld-linux-x86-64.so.2".to_owned()))
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(interpreter(b"#!/bin/sh\n").is_err());
        assert!(interpreter(&image(None)[..0x30]).is_err());
        let mut truncated = image(Some("/lib/ld-musl-x86_64.so.1"));
        truncated.truncate(truncated.len() - 4);
        assert!(interpreter(&truncated).is_err());
    }

    #[test]
    fn reads_this_test_binary() {
        // Whatever the test binary is, it parses.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(interpreter(&exe).is_ok());
    }
}
