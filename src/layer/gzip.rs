//! A deterministic parallel gzip: one gzip member built from independently deflated 1 MiB units.
//!
//! Measured on the 2-core build machine, a single zlib-rs deflate stream at level 1 runs at about
//! 160 MB/s on text but only 60 MB/s on random bytes (which it also *expands* by 5%, because
//! level 1 uses fixed Huffman codes). A `COPY` of a context that is half random data spent most of
//! its time compressing bytes that cannot shrink. So, like pigz, the tar stream is cut into units
//! that are deflated on separate threads and concatenated (each unit ends on a byte boundary with
//! a sync flush, so the pieces form one valid deflate stream), and like zstd, data that looks
//! incompressible is written as stored blocks at memcpy speed instead of being compressed.
//!
//! Every decision depends only on the bytes and on the unit boundaries the producer chooses
//! (fixed 1 MiB fills, see `write`), never on thread timing, so the output - and the digest - is
//! the same on every run and every machine. The entropy test is integer arithmetic for the same
//! reason: a floating-point `log2` could round differently on another libm.

use std::ops::Range;

use flate2::{Compress, Compression, Crc, FlushCompress};

use super::LayerError;

/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS "unknown" (255), as Go and
/// flate2 write it.
pub(crate) const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// File data is judged in windows of this size, from the start of each data range.
const WINDOW: usize = 64 * 1024;
/// Bytes sampled at the start of each window.
const SAMPLE: usize = 4096;

/// A piece of the tar stream handed to a compressor thread.
pub(crate) struct Unit {
    pub seq: u64,
    pub data: Vec<u8>,
    /// Ranges of `data` that hold file contents (the rest is headers and padding, always
    /// compressed). Sorted, non-overlapping.
    pub file_ranges: Vec<Range<usize>>,
}

/// A unit's deflate bytes, with the CRC-32 and length of its input.
pub(crate) struct Packed {
    pub seq: u64,
    pub deflated: Vec<u8>,
    pub crc: Crc,
}

/// Deflates one unit. `comp` is a raw-deflate compressor reused between calls (it is reset for
/// every compressed run, so no state leaks between units).
pub(crate) fn pack(unit: &Unit, comp: &mut Compress) -> Result<Packed, LayerError> {
    let mut crc = Crc::new();
    crc.update(&unit.data);
    let mut deflated = Vec::with_capacity(unit.data.len() / 2 + 1024);
    for (range, store) in runs(unit) {
        let data = &unit.data[range];
        if store {
            write_stored(data, &mut deflated);
        } else {
            write_deflated(data, comp, &mut deflated)?;
        }
    }
    Ok(Packed {
        seq: unit.seq,
        deflated,
        crc,
    })
}

/// The end of the member: an empty final stored block, then CRC-32 and length (mod 2^32).
pub(crate) fn trailer(crc: &Crc) -> [u8; 13] {
    let mut out = [0u8; 13];
    out[..5].copy_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    out[5..9].copy_from_slice(&crc.sum().to_le_bytes());
    out[9..13].copy_from_slice(&crc.amount().to_le_bytes());
    out
}

/// Splits a unit into maximal runs that are all stored or all compressed.
fn runs(unit: &Unit) -> Vec<(Range<usize>, bool)> {
    let mut pieces: Vec<(Range<usize>, bool)> = Vec::new();
    let mut push = |r: Range<usize>, store: bool| {
        if r.is_empty() {
            return;
        }
        match pieces.last_mut() {
            Some((last, s)) if *s == store && last.end == r.start => last.end = r.end,
            _ => pieces.push((r, store)),
        }
    };
    let mut pos = 0;
    for fr in &unit.file_ranges {
        push(pos..fr.start, false);
        let mut start = fr.start;
        while start < fr.end {
            let end = (start + WINDOW).min(fr.end);
            push(start..end, incompressible(&unit.data[start..end]));
            start = end;
        }
        pos = fr.end;
    }
    push(pos..unit.data.len(), false);
    pieces
}

/// Whether a window looks like random or already-compressed bytes, judged from its first
/// [`SAMPLE`] bytes by the collision count `Σ count²` of the byte histogram. Uniform bytes give
/// about `n + n²/256` (69,632 for 4 KiB); text and machine code give several times that. Below
/// twice the uniform figure the data would not shrink under level-1 deflate anyway. Windows
/// shorter than a sample are compressed.
fn incompressible(window: &[u8]) -> bool {
    if window.len() < SAMPLE {
        return false;
    }
    let mut counts = [0u32; 256];
    for &b in &window[..SAMPLE] {
        counts[b as usize] += 1;
    }
    let collisions: u64 = counts.iter().map(|&c| u64::from(c) * u64::from(c)).sum();
    let n = SAMPLE as u64;
    collisions < 2 * (n + n * n / 256)
}

/// Stored blocks (BTYPE 00) of at most 65,535 bytes, never final. The stream is byte-aligned
/// here because every run ends with a sync flush or a stored block.
fn write_stored(data: &[u8], out: &mut Vec<u8>) {
    for block in data.chunks(65_535) {
        let len = block.len() as u16;
        out.push(0x00);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
}

/// One independently compressed run ending in a sync flush (so it ends byte-aligned).
fn write_deflated(data: &[u8], comp: &mut Compress, out: &mut Vec<u8>) -> Result<(), LayerError> {
    comp.reset();
    let start = comp.total_in();
    loop {
        let consumed = (comp.total_in() - start) as usize;
        // Room for the rest of the input even if it does not shrink, plus the flush marker.
        out.reserve(data.len() - consumed + data.len() / 8 + 64);
        comp.compress_vec(&data[consumed..], out, FlushCompress::Sync)
            .map_err(|e| LayerError::Compress {
                message: e.to_string(),
            })?;
        // Done once all input is in and the flush left output space unused.
        if (comp.total_in() - start) as usize == data.len() && out.len() < out.capacity() {
            return Ok(());
        }
    }
}

/// A raw-deflate compressor for [`pack`].
pub(crate) fn compressor(level: u32) -> Compress {
    Compress::new(Compression::new(level), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn units_concatenate_into_one_valid_member() {
        let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog\n"
            .iter()
            .cycle()
            .take(200_000)
            .copied()
            .collect();
        let mut random = vec![0u8; 150_000];
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for b in &mut random {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 24) as u8;
        }
        let mut first = text.clone();
        first.extend_from_slice(&random);
        let units = [
            Unit {
                seq: 0,
                file_ranges: vec![0..text.len(), text.len()..first.len()],
                data: first.clone(),
            },
            Unit {
                seq: 1,
                file_ranges: vec![],
                data: text.clone(),
            },
        ];
        let mut comp = compressor(1);
        let mut gz = HEADER.to_vec();
        let mut crc = Crc::new();
        for u in &units {
            let p = pack(u, &mut comp).unwrap();
            crc.combine(&p.crc);
            gz.extend_from_slice(&p.deflated);
        }
        gz.extend_from_slice(&trailer(&crc));
        let mut expected = first;
        expected.extend_from_slice(&text);
        assert!(gunzip(&gz) == expected);
        // The random part was stored (not expanded), the text part compressed well.
        assert!(gz.len() < random.len() + 20_000, "{}", gz.len());
        assert!(gz.len() > random.len(), "{}", gz.len());
        // GNU gzip agrees that the member is valid.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.gz"), &gz).unwrap();
        let status = std::process::Command::new("gzip")
            .arg("-t")
            .arg(dir.path().join("x.gz"))
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn entropy_test_tells_random_from_text() {
        let text: Vec<u8> = b"fn main() { println!(\"hello\"); }\n"
            .iter()
            .cycle()
            .take(8192)
            .copied()
            .collect();
        assert!(!incompressible(&text));
        let mut random = vec![0u8; 8192];
        let mut x: u64 = 88172645463325252;
        for b in &mut random {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        assert!(incompressible(&random));
        assert!(!incompressible(&random[..100]));
    }
}
