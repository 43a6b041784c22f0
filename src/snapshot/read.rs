//! Reading a snapshot file into memory, hashing it on a second thread as it arrives.
//!
//! A snapshot is hundreds of megabytes, and the reader's floor is what `openssl dgst`
//! does: read it once and hash it. The hash used to start after the whole read; chunks
//! now go to the hasher ([`trailer::Streaming`]) as soon as they are in, so the hash
//! ends about when the read does and the parse after it runs alone.
//!
//! This is how `ensure` reads (a file that goes bad under it is an error, and it passes
//! over that backup for an older one); `inspect` and `recover`, which read one file and
//! exit, map it instead (`Options::map_or_exit`, [`crate::fsutil::mapped`]), which
//! skips the copy and the page faults of a fresh buffer.
//!
//! Tried and dropped: asking for transparent huge pages under the buffer
//! (`madvise`). It made back-to-back runs 30 % faster (a
//! tenth of the page faults) but a run after a pause twice as slow on this VM, whose
//! host takes back free 2 MiB blocks (sys time 0.2 s → 0.7 s): an operator runs
//! `inspect` once, after a pause.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc;

use super::trailer::{self, Streamed};
use crate::progress::Progress;

/// Bytes read (and handed to the hasher) at a time.
const CHUNK: usize = 4 * 1024 * 1024;
/// Chunks read ahead of the hasher; they are borrowed, not copied, so this bounds
/// nothing but the channel.
const AHEAD: usize = 16;

/// The whole file at `path`, and, when `hash`, the trailer check of exactly those bytes.
/// Shows `reading PATH` on `progress`. A file that grew while it was read is returned
/// whole without a check (the caller hashes it again); one that shrank is returned as
/// read, its check covering what was read.
pub fn read(
    path: &Path,
    progress: &mut Option<Progress>,
    hash: bool,
) -> std::io::Result<(Vec<u8>, Option<Streamed>)> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let p = progress.insert(Progress::new(format!("reading {}", path.display()), len));
    let len = usize::try_from(len)
        .map_err(|_| std::io::Error::other("file too large for this machine's memory"))?;
    // Zeroed pages are mapped lazily: nothing is touched before it is read into.
    let mut bytes = vec![0u8; len];
    let mut filled = 0;
    let streamed = std::thread::scope(|s| -> std::io::Result<Option<Streamed>> {
        let (tx, rx) = mpsc::sync_channel::<&[u8]>(AHEAD);
        // Without a thread there is no streamed check, and the parse hashes the file.
        let hasher = hash
            .then(|| {
                super::beside(s, "snapshot-sha256", move || {
                    let mut h = trailer::Streaming::default();
                    rx.iter().for_each(|chunk| h.update(chunk));
                    h.finish()
                })
            })
            .flatten();
        let mut read = Ok(());
        for chunk in bytes.chunks_mut(CHUNK) {
            let n = match fill(&mut file, chunk) {
                Ok(n) => n,
                Err(e) => {
                    read = Err(e);
                    break;
                }
            };
            filled += n;
            p.advance(n as u64);
            let chunk: &[u8] = chunk;
            if hash {
                // The hasher only ends early by panicking; its join reports that.
                let _ = tx.send(chunk.get(..n).unwrap_or_default());
            }
            if n < chunk.len() {
                break;
            }
        }
        drop(tx);
        let streamed = hasher.and_then(|h| h.join().ok());
        read.map(|()| streamed)
    })?;
    bytes.truncate(filled);
    let mut rest = Vec::new();
    file.read_to_end(&mut rest)?;
    if !rest.is_empty() {
        p.advance(rest.len() as u64);
        bytes.extend_from_slice(&rest);
        return Ok((bytes, None));
    }
    Ok((bytes, streamed))
}

/// Reads into `buf` until it is full or the file ends; how many bytes came.
fn fill(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while let Some(rest) = buf.get_mut(n..).filter(|r| !r.is_empty()) {
        match file.read(rest) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_trailer(body: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        let mut file = body.to_vec();
        file.extend_from_slice(&sha2::Sha256::digest(body));
        file
    }

    #[test]
    fn a_file_reads_whole_and_hashes_as_it_comes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // Pages (512-byte multiples) across more than two chunks, then the trailer.
        let body: Vec<u8> = (0..(2 * CHUNK + 512 * 3))
            .map(|i| (i % 251) as u8)
            .collect();
        let data = with_trailer(&body);
        std::fs::write(&path, &data).unwrap();
        let mut p = None;
        let (bytes, streamed) = read(&path, &mut p, true).unwrap();
        assert_eq!(bytes, data);
        assert_eq!(p.map(|p| p.done()), Some(data.len() as u64));
        let streamed = streamed.unwrap();
        assert_eq!(streamed.trailer.unwrap().len, data.len());
        assert_eq!(streamed.file_sha256, trailer::verify(&data).unwrap());
    }

    #[test]
    fn a_flipped_byte_is_a_mismatch_and_no_hash_means_no_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut data = with_trailer(&[7u8; 1024]);
        data[100] ^= 1;
        std::fs::write(&path, &data).unwrap();
        let (bytes, streamed) = read(&path, &mut None, true).unwrap();
        assert_eq!(bytes, data);
        assert!(matches!(
            streamed.unwrap().trailer,
            Err(super::super::Problem::HashMismatch { .. })
        ));
        let (bytes, streamed) = read(&path, &mut None, false).unwrap();
        assert_eq!((bytes, streamed), (data, None));
    }

    #[test]
    fn an_empty_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        let (bytes, streamed) = read(&path, &mut None, true).unwrap();
        assert!(bytes.is_empty());
        assert!(streamed.unwrap().trailer.is_err());
    }
}
