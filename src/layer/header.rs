//! Byte-exact tar headers: ustar blocks plus PAX extended headers where ustar runs out.
//!
//! gantry writes its own 512-byte headers instead of going through `tar::Builder` because a layer
//! digest is only stable if every byte of every header is pinned: the tar crate falls back to GNU
//! long-name entries and base-256 numbers, which are harder to reason about and differ from what
//! Go's `archive/tar` (Docker, BuildKit, kaniko) writes. The layout below follows Go's ustar
//! writer: zero-padded octal numbers ending in NUL, empty uname/gname, device numbers 0, and a PAX
//! (`x`) header carrying whatever does not fit (long paths and link targets, big ids, sizes,
//! out-of-range times, `SCHILY.xattr.*`).

/// One tar block.
pub(crate) const BLOCK: usize = 512;

/// The largest value an 8-byte octal field (mode, uid, gid) can hold: 7 digits.
const MAX_OCTAL_8: u64 = 0o7777777;
/// The largest value a 12-byte octal field (size, mtime) can hold: 11 digits.
const MAX_OCTAL_12: u64 = 0o77777777777;

/// Tar type flags gantry writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TypeFlag {
    File,
    Hardlink,
    Symlink,
    Dir,
    Fifo,
}

impl TypeFlag {
    fn byte(self) -> u8 {
        match self {
            TypeFlag::File => b'0',
            TypeFlag::Hardlink => b'1',
            TypeFlag::Symlink => b'2',
            TypeFlag::Dir => b'5',
            TypeFlag::Fifo => b'6',
        }
    }
}

/// Everything that goes into one entry's header (or headers, with PAX).
pub(crate) struct HeaderFields<'a> {
    pub name: &'a str,
    pub flag: TypeFlag,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    pub link: &'a str,
    /// Sorted by name by the caller.
    pub xattrs: &'a [(String, Vec<u8>)],
}

/// Appends the header block(s) for `h` to `out`: an optional PAX header with its padded records,
/// then the ustar block. The entry's data (if any) is the caller's to append and pad.
pub(crate) fn encode(h: &HeaderFields<'_>, out: &mut Vec<u8>) {
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    let name_fits = h.name.len() <= 100;
    let link_fits = h.link.len() <= 100;
    if !name_fits {
        records.push(("path".into(), h.name.as_bytes().to_vec()));
    }
    if !link_fits {
        records.push(("linkpath".into(), h.link.as_bytes().to_vec()));
    }
    if h.uid > MAX_OCTAL_8 {
        records.push(("uid".into(), h.uid.to_string().into_bytes()));
    }
    if h.gid > MAX_OCTAL_8 {
        records.push(("gid".into(), h.gid.to_string().into_bytes()));
    }
    if h.size > MAX_OCTAL_12 {
        records.push(("size".into(), h.size.to_string().into_bytes()));
    }
    let mtime_fits = h.mtime >= 0 && (h.mtime as u64) <= MAX_OCTAL_12;
    if !mtime_fits {
        records.push(("mtime".into(), h.mtime.to_string().into_bytes()));
    }
    for (key, value) in h.xattrs {
        records.push((format!("SCHILY.xattr.{key}"), value.clone()));
    }
    if !records.is_empty() {
        // Go sorts PAX records by key; so do we, so that the bytes never depend on push order.
        records.sort_by(|a, b| a.0.cmp(&b.0));
        let mut data = Vec::new();
        for (key, value) in &records {
            pax_record(key, value, &mut data);
        }
        let base = h
            .name
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("");
        let pax_name = truncate(&format!("PaxHeaders.0/{base}"), 100).to_string();
        ustar_block(
            &UstarBlock {
                name: pax_name.as_bytes(),
                flag: b'x',
                mode: 0,
                uid: 0,
                gid: 0,
                size: data.len() as u64,
                mtime: 0,
                link: b"",
            },
            out,
        );
        out.extend_from_slice(&data);
        pad(out);
    }
    let name = if name_fits {
        h.name
    } else {
        truncate(h.name, 100)
    };
    let link = if link_fits {
        h.link
    } else {
        truncate(h.link, 100)
    };
    ustar_block(
        &UstarBlock {
            name: name.as_bytes(),
            flag: h.flag.byte(),
            mode: u64::from(h.mode & 0o7777),
            uid: h.uid.min(MAX_OCTAL_8),
            gid: h.gid.min(MAX_OCTAL_8),
            size: h.size.min(MAX_OCTAL_12),
            mtime: if mtime_fits { h.mtime as u64 } else { 0 },
            link: link.as_bytes(),
        },
        out,
    );
}

/// Pads `out` with zeros to the next block boundary.
pub(crate) fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % BLOCK;
    if rem != 0 {
        out.resize(out.len() + BLOCK - rem, 0);
    }
}

/// Zero bytes needed after `size` bytes of data to reach a block boundary.
pub(crate) fn padding_for(size: u64) -> usize {
    let rem = (size % BLOCK as u64) as usize;
    if rem == 0 {
        0
    } else {
        BLOCK - rem
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `"<len> <key>=<value>\n"` where `<len>` counts the whole record including its own digits.
fn pax_record(key: &str, value: &[u8], out: &mut Vec<u8>) {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

struct UstarBlock<'a> {
    name: &'a [u8],
    flag: u8,
    mode: u64,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: &'a [u8],
}

fn ustar_block(b: &UstarBlock<'_>, out: &mut Vec<u8>) {
    let mut block = [0u8; BLOCK];
    block[..b.name.len()].copy_from_slice(b.name);
    octal(&mut block[100..108], b.mode);
    octal(&mut block[108..116], b.uid);
    octal(&mut block[116..124], b.gid);
    octal(&mut block[124..136], b.size);
    octal(&mut block[136..148], b.mtime);
    block[156] = b.flag;
    block[157..157 + b.link.len()].copy_from_slice(b.link);
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    // uname (265..297) and gname (297..329) stay empty.
    octal(&mut block[329..337], 0);
    octal(&mut block[337..345], 0);
    // The checksum is computed with its own field read as eight spaces.
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block.iter().map(|&x| u32::from(x)).sum();
    let digits = format!("{sum:06o}");
    block[148..154].copy_from_slice(digits.as_bytes());
    block[154] = 0;
    block[155] = b' ';
    out.extend_from_slice(&block);
}

/// Zero-padded octal digits filling all but the last byte of `field`, which is NUL.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    field[..width].copy_from_slice(&digits.as_bytes()[digits.len() - width..]);
    field[width] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_its_own_digits() {
        let mut out = Vec::new();
        pax_record("path", b"a", &mut out);
        assert_eq!(out, b"9 path=a\n");
        let mut out = Vec::new();
        let value = vec![b'x'; 91];
        pax_record("path", &value, &mut out);
        // 4 + 91 + 3 = 98 body bytes: "100" would make 101, so the length is 101 and says so.
        assert_eq!(&out[..4], b"101 ");
        assert_eq!(out.len(), 101);
    }

    #[test]
    fn ustar_block_matches_go_layout() {
        let mut out = Vec::new();
        encode(
            &HeaderFields {
                name: "etc/",
                flag: TypeFlag::Dir,
                mode: 0o40755,
                uid: 0,
                gid: 0,
                size: 0,
                mtime: 1,
                link: "",
                xattrs: &[],
            },
            &mut out,
        );
        assert_eq!(out.len(), BLOCK);
        assert_eq!(&out[..5], b"etc/\0");
        assert_eq!(&out[100..108], b"0000755\0");
        assert_eq!(&out[124..136], b"00000000000\0");
        assert_eq!(&out[136..148], b"00000000001\0");
        assert_eq!(out[156], b'5');
        assert_eq!(&out[257..265], b"ustar\x0000");
        let parsed = tar::Header::from_byte_slice(&out);
        assert_eq!(parsed.cksum().unwrap(), {
            let mut copy = out.clone();
            copy[148..156].copy_from_slice(b"        ");
            copy.iter().map(|&x| u32::from(x)).sum::<u32>()
        });
    }
}
