//! A read-only bbolt reader over an in-memory file, so etcd's store can be read
//! without etcd, without mmap and without trusting a single offset in the file.
//!
//! Built the way bbolt itself is (<https://github.com/etcd-io/bbolt/blob/v1.3.6/page.go>,
//! `db.go`, `cursor.go`), from small types: a [`PageHeader`], branch and leaf element
//! views whose keys and values come from offsets, [`Meta::validate`] (magic, then
//! version, then checksum) and a [`Cursor`] holding a stack of (page, index). Where
//! bbolt panics on a bad offset this returns a [`Problem`]. All integers are little
//! endian (bbolt writes native order; every platform etcd ships for is little endian).
//!
//! The freelist is never read: only pages reachable from the chosen meta's root are.

use super::Problem;

/// `magic` of a bbolt meta page.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The only data file version bbolt has ever written.
pub const VERSION: u32 = 2;

const PAGE_HEADER_LEN: usize = 16;
/// Branch elements (pos, ksize, pgid) and leaf elements (flags, pos, ksize, vsize)
/// are both 16 bytes.
const ELEMENT_LEN: usize = 16;
/// Meta fields before the checksum; the checksum is FNV-64a over exactly these.
const META_SUMMED_LEN: usize = 56;
const META_LEN: usize = META_SUMMED_LEN + 8;

const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
/// Leaf element flag: the value is a nested bucket header (+ inline page).
const BUCKET_LEAF_FLAG: u32 = 0x01;
/// A bucket value starts with (root pgid, sequence); root 0 means an inline bucket
/// whose page follows the header.
const BUCKET_HEADER_LEN: usize = 16;

fn le<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}
fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    le(b, off).map(u16::from_le_bytes)
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    le(b, off).map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    le(b, off).map(u64::from_le_bytes)
}
fn corrupt(what: String) -> Problem {
    Problem::Corrupt(what)
}

/// FNV-1a, 64 bit: bbolt's meta checksum (`hash/fnv.New64a`).
pub fn fnv64a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The 16 bytes at the start of every page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    pub id: u64,
    pub flags: u16,
    pub count: u16,
    /// Number of extra pages this one spans.
    pub overflow: u32,
}

impl PageHeader {
    pub fn parse(b: &[u8]) -> Option<PageHeader> {
        Some(PageHeader {
            id: u64_at(b, 0)?,
            flags: u16_at(b, 8)?,
            count: u16_at(b, 10)?,
            overflow: u32_at(b, 12)?,
        })
    }
}

/// A meta page's body (after the page header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub magic: u32,
    pub version: u32,
    pub page_size: u32,
    pub flags: u32,
    /// Root page of the root bucket (whose entries are the top-level buckets).
    pub root: u64,
    pub sequence: u64,
    pub freelist: u64,
    /// High-water mark: number of pages in use.
    pub pgid: u64,
    pub txid: u64,
    pub checksum: u64,
    /// The checksum computed over the bytes read, for [`Meta::validate`].
    computed: u64,
}

impl Meta {
    /// Parses the meta body at the start of `b`; `None` if `b` is too short.
    pub fn parse(b: &[u8]) -> Option<Meta> {
        let b = b.get(..META_LEN)?;
        Some(Meta {
            magic: u32_at(b, 0)?,
            version: u32_at(b, 4)?,
            page_size: u32_at(b, 8)?,
            flags: u32_at(b, 12)?,
            root: u64_at(b, 16)?,
            sequence: u64_at(b, 24)?,
            freelist: u64_at(b, 32)?,
            pgid: u64_at(b, 40)?,
            txid: u64_at(b, 48)?,
            checksum: u64_at(b, 56)?,
            computed: fnv64a(b.get(..META_SUMMED_LEN)?),
        })
    }

    /// Magic, then version, then checksum, each with its own error.
    pub fn validate(&self) -> Result<(), Problem> {
        if self.magic != MAGIC {
            return Err(Problem::BadMagic(self.magic));
        }
        if self.version != VERSION {
            return Err(Problem::UnsupportedVersion(self.version));
        }
        if self.checksum != self.computed {
            return Err(Problem::BadChecksum);
        }
        Ok(())
    }
}

/// Reads and validates the meta on the page starting at byte `off`.
fn read_meta(data: &[u8], off: usize, page: u64) -> Result<Meta, Problem> {
    let body = off.checked_add(PAGE_HEADER_LEN).and_then(|o| data.get(o..));
    let Some(meta) = body.and_then(Meta::parse) else {
        // Too short for a meta: say "not bbolt" if even the magic is wrong.
        return match body.and_then(|b| u32_at(b, 0)) {
            Some(m) if m != MAGIC => Err(Problem::BadMagic(m)),
            _ => Err(Problem::Truncated {
                page,
                len: data.len(),
            }),
        };
    };
    meta.validate()?;
    Ok(meta)
}

fn sane_page_size(ps: u32) -> bool {
    ps.is_power_of_two() && (512..=1 << 20).contains(&ps)
}

/// A page (with its overflow pages) or an inline bucket's page.
#[derive(Clone, Copy)]
pub struct Page<'a> {
    pub header: PageHeader,
    /// Header, elements and data, up to the end of the last overflow page.
    bytes: &'a [u8],
}

impl std::fmt::Debug for Page<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("header", &self.header)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// One leaf entry: a key/value pair or a nested bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub flags: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl Entry<'_> {
    pub fn is_bucket(&self) -> bool {
        self.flags & BUCKET_LEAF_FLAG != 0
    }
}

impl<'a> Page<'a> {
    fn is_leaf(&self) -> bool {
        self.header.flags & LEAF_PAGE != 0
    }
    fn is_branch(&self) -> bool {
        self.header.flags & BRANCH_PAGE != 0
    }

    fn element(&self, i: usize) -> Result<(usize, [u32; 4]), Problem> {
        let off = i * ELEMENT_LEN + PAGE_HEADER_LEN;
        let w = |k: usize| u32_at(self.bytes, off + k);
        match (w(0), w(4), w(8), w(12)) {
            (Some(a), Some(b), Some(c), Some(d)) => Ok((off, [a, b, c, d])),
            _ => Err(corrupt(format!(
                "page {}: element {i} is out of bounds",
                self.header.id
            ))),
        }
    }

    fn slice(&self, start: usize, len: u32, i: usize) -> Result<&'a [u8], Problem> {
        let end = start.saturating_add(len as usize);
        self.bytes.get(start..end).ok_or_else(|| {
            corrupt(format!(
                "page {}: element {i} points outside the page",
                self.header.id
            ))
        })
    }

    /// Branch element `i`: (first key of the child, child page id).
    pub fn branch(&self, i: usize) -> Result<(&'a [u8], u64), Problem> {
        let (off, [pos, ksize, lo, hi]) = self.element(i)?;
        let key = self.slice(off.saturating_add(pos as usize), ksize, i)?;
        Ok((key, u64::from(lo) | (u64::from(hi) << 32)))
    }

    /// Leaf element `i`.
    pub fn leaf(&self, i: usize) -> Result<Entry<'a>, Problem> {
        let (off, [flags, pos, ksize, vsize]) = self.element(i)?;
        let kstart = off.saturating_add(pos as usize);
        let key = self.slice(kstart, ksize, i)?;
        let value = self.slice(kstart.saturating_add(ksize as usize), vsize, i)?;
        Ok(Entry { flags, key, value })
    }
}

/// Where a bucket's tree lives.
#[derive(Debug, Clone, Copy)]
pub enum Bucket<'a> {
    Paged(u64),
    /// An inline bucket's leaf page, stored in its parent's value.
    Inline(&'a [u8]),
}

/// An open bbolt file.
pub struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    meta: Meta,
}

impl std::fmt::Debug for Db<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("len", &self.data.len())
            .field("meta", &self.meta)
            .finish()
    }
}

impl<'a> Db<'a> {
    /// Validates the two meta pages and keeps the valid one with the higher txid.
    pub fn open(data: &'a [u8]) -> Result<Db<'a>, Problem> {
        let m0 = read_meta(data, 0, 0);
        // Page 1 sits one page size in; without a valid meta 0, try the usual sizes.
        let sizes: Vec<u32> = match &m0 {
            Ok(m) if sane_page_size(m.page_size) => vec![m.page_size],
            _ => (9..=16).map(|s| 1u32 << s).collect(),
        };
        let m1 = sizes
            .iter()
            .map(|&ps| read_meta(data, ps as usize, 1).and_then(|m| same_size(m, ps)))
            .find(Result::is_ok)
            .unwrap_or(Err(Problem::BadChecksum));
        let meta = match (m0, m1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(m), Err(_)) | (Err(_), Ok(m)) => m,
            (Err(e), Err(_)) => return Err(e),
        };
        if !sane_page_size(meta.page_size) {
            return Err(corrupt(format!("meta page size {}", meta.page_size)));
        }
        Ok(Db {
            data,
            page_size: meta.page_size as usize,
            meta,
        })
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The page `id` with its overflow pages, bounds-checked against the file.
    pub fn page(&self, id: u64) -> Result<Page<'a>, Problem> {
        let truncated = Problem::Truncated {
            page: id,
            len: self.data.len(),
        };
        let off = usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_mul(self.page_size))
            .ok_or_else(|| truncated.clone())?;
        let header = off
            .checked_add(PAGE_HEADER_LEN)
            .and_then(|end| self.data.get(off..end))
            .and_then(PageHeader::parse)
            .ok_or_else(|| truncated.clone())?;
        if header.id != id {
            return Err(corrupt(format!(
                "page {id} has id {} in its header",
                header.id
            )));
        }
        let bytes = (header.overflow as usize)
            .checked_add(1)
            .and_then(|n| n.checked_mul(self.page_size))
            .and_then(|span| off.checked_add(span))
            .and_then(|end| self.data.get(off..end))
            .ok_or(truncated)?;
        Ok(Page { header, bytes })
    }

    /// The root bucket: its entries are the top-level buckets.
    pub fn root(&self) -> Bucket<'a> {
        Bucket::Paged(self.meta.root)
    }

    /// The nested bucket `name` of `parent`, if there is one.
    pub fn bucket(&self, parent: Bucket<'a>, name: &[u8]) -> Result<Option<Bucket<'a>>, Problem> {
        for entry in self.cursor(parent)? {
            let entry = entry?;
            if entry.key != name || !entry.is_bucket() {
                continue;
            }
            let root = u64_at(entry.value, 0).ok_or_else(|| {
                corrupt(format!(
                    "bucket `{}` header is short",
                    String::from_utf8_lossy(name)
                ))
            })?;
            return Ok(Some(match root {
                0 => Bucket::Inline(entry.value.get(BUCKET_HEADER_LEN..).unwrap_or_default()),
                id => Bucket::Paged(id),
            }));
        }
        Ok(None)
    }

    /// Iterates every leaf entry of `bucket` in key order.
    pub fn cursor(&self, bucket: Bucket<'a>) -> Result<Cursor<'_, 'a>, Problem> {
        let mut cursor = Cursor {
            db: self,
            stack: Vec::new(),
            visited: Vec::new(),
        };
        let root = match bucket {
            Bucket::Paged(id) => cursor.enter(id)?,
            Bucket::Inline(bytes) => {
                let header = PageHeader::parse(bytes)
                    .ok_or_else(|| corrupt("inline bucket shorter than a page header".into()))?;
                let page = Page { header, bytes };
                if !page.is_leaf() {
                    return Err(corrupt(format!(
                        "inline bucket page flags {:#x}",
                        header.flags
                    )));
                }
                page
            }
        };
        cursor.stack.push((root, 0));
        Ok(cursor)
    }
}

fn same_size(m: Meta, ps: u32) -> Result<Meta, Problem> {
    if m.page_size == ps {
        Ok(m)
    } else {
        Err(Problem::BadChecksum)
    }
}

/// Depth-first walk of one bucket's tree: a stack of (page, next element index).
/// Each page is entered at most once, so a cyclic (corrupt) tree ends in an error.
#[derive(Debug)]
pub struct Cursor<'d, 'a> {
    db: &'d Db<'a>,
    stack: Vec<(Page<'a>, usize)>,
    /// Bitset of entered page ids.
    visited: Vec<u64>,
}

impl<'a> Cursor<'_, 'a> {
    fn enter(&mut self, id: u64) -> Result<Page<'a>, Problem> {
        let page = self.db.page(id)?;
        if !page.is_leaf() && !page.is_branch() {
            return Err(corrupt(format!(
                "page {id}: expected a branch or leaf page, found flags {:#x}",
                page.header.flags
            )));
        }
        // `page` succeeded, so id * page_size fits in the file and in usize.
        let (word, bit) = ((id / 64) as usize, id % 64);
        if self.visited.len() <= word {
            self.visited.resize(word + 1, 0);
        }
        let slot = self
            .visited
            .get_mut(word)
            .ok_or_else(|| corrupt("bitset".into()))?;
        if *slot & (1 << bit) != 0 {
            return Err(corrupt(format!(
                "page {id} is reached twice (cycle in the tree)"
            )));
        }
        *slot |= 1 << bit;
        Ok(page)
    }

    fn step(&mut self) -> Result<Option<Entry<'a>>, Problem> {
        loop {
            let Some((page, next)) = self.stack.last_mut() else {
                return Ok(None);
            };
            let i = *next;
            if i >= usize::from(page.header.count) {
                self.stack.pop();
                continue;
            }
            *next += 1;
            let page = *page;
            if page.is_leaf() {
                return page.leaf(i).map(Some);
            }
            let (_, child) = page.branch(i)?;
            let child = self.enter(child)?;
            self.stack.push((child, 0));
        }
    }
}

impl<'a> Iterator for Cursor<'_, 'a> {
    type Item = Result<Entry<'a>, Problem>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.step().transpose();
        if matches!(item, Some(Err(_))) {
            self.stack.clear();
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS: usize = 4096;

    fn put_meta(file: &mut [u8], page: usize, txid: u64, root: u64) {
        let off = page * PS;
        file[off..off + 8].copy_from_slice(&(page as u64).to_le_bytes());
        file[off + 8..off + 10].copy_from_slice(&0x04u16.to_le_bytes());
        let m = &mut file[off + PAGE_HEADER_LEN..off + PAGE_HEADER_LEN + META_LEN];
        m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        m[4..8].copy_from_slice(&VERSION.to_le_bytes());
        m[8..12].copy_from_slice(&(PS as u32).to_le_bytes());
        m[16..24].copy_from_slice(&root.to_le_bytes());
        m[40..48].copy_from_slice(&4u64.to_le_bytes());
        m[48..56].copy_from_slice(&txid.to_le_bytes());
        let sum = fnv64a(&m[..META_SUMMED_LEN]);
        m[56..64].copy_from_slice(&sum.to_le_bytes());
    }

    /// Leaf page `page` with the given (flags, key, value) elements.
    fn put_leaf(file: &mut [u8], page: usize, elems: &[(u32, &[u8], &[u8])]) {
        let off = page * PS;
        file[off..off + 8].copy_from_slice(&(page as u64).to_le_bytes());
        file[off + 8..off + 10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
        file[off + 10..off + 12].copy_from_slice(&(elems.len() as u16).to_le_bytes());
        let mut data = off + PAGE_HEADER_LEN + elems.len() * ELEMENT_LEN;
        for (i, (flags, k, v)) in elems.iter().enumerate() {
            let e = off + PAGE_HEADER_LEN + i * ELEMENT_LEN;
            let fields = [*flags, (data - e) as u32, k.len() as u32, v.len() as u32];
            for (j, f) in fields.iter().enumerate() {
                file[e + 4 * j..e + 4 * j + 4].copy_from_slice(&f.to_le_bytes());
            }
            file[data..data + k.len()].copy_from_slice(k);
            file[data + k.len()..data + k.len() + v.len()].copy_from_slice(v);
            data += k.len() + v.len();
        }
    }

    /// Metas on pages 0 and 1 (txids 1 and 2), root bucket leaf on page 2 holding
    /// bucket `b` (paged, leaf page 3) and inline bucket `i`.
    fn sample() -> Vec<u8> {
        let mut f = vec![0u8; 4 * PS];
        put_meta(&mut f, 0, 1, 2);
        put_meta(&mut f, 1, 2, 2);
        let mut inline = vec![0u8; BUCKET_HEADER_LEN];
        let mut page = [0u8; 64];
        page[8..10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
        page[10..12].copy_from_slice(&1u16.to_le_bytes());
        page[16..32].copy_from_slice(&[0, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
        page[32..34].copy_from_slice(b"xy");
        inline.extend_from_slice(&page[..34]);
        let paged = [3u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        put_leaf(&mut f, 2, &[(1, b"b", &paged), (1, b"i", &inline)]);
        put_leaf(&mut f, 3, &[(0, b"k1", b"v1"), (0, b"k2", b"")]);
        f
    }

    fn entries(db: &Db<'_>, name: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let b = db.bucket(db.root(), name).unwrap().unwrap();
        db.cursor(b)
            .unwrap()
            .map(|e| e.map(|e| (e.key.to_vec(), e.value.to_vec())))
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn reads_paged_and_inline_buckets() {
        let f = sample();
        let db = Db::open(&f).unwrap();
        assert_eq!(db.meta().txid, 2);
        assert_eq!(
            entries(&db, b"b"),
            [(b"k1".to_vec(), b"v1".to_vec()), (b"k2".to_vec(), vec![])]
        );
        assert_eq!(entries(&db, b"i"), [(b"x".to_vec(), b"y".to_vec())]);
        assert!(db.bucket(db.root(), b"nope").unwrap().is_none());
    }

    #[test]
    fn meta_validation_order_and_fallback() {
        let mut f = sample();
        // A broken checksum on the newer meta falls back to the older one.
        f[PS + PAGE_HEADER_LEN + 60] ^= 1;
        assert_eq!(Db::open(&f).unwrap().meta().txid, 1);
        f[PAGE_HEADER_LEN + 60] ^= 1;
        assert_eq!(Db::open(&f).unwrap_err(), Problem::BadChecksum);
        let mut v = sample();
        v[PAGE_HEADER_LEN + 4] = 3;
        v[PS + PAGE_HEADER_LEN + 4] = 3;
        assert_eq!(Db::open(&v).unwrap_err(), Problem::UnsupportedVersion(3));
        let mut m = sample();
        m[PAGE_HEADER_LEN] = 0;
        assert_eq!(Db::open(&m).unwrap().meta().txid, 2);
        m[PS + PAGE_HEADER_LEN] = 0;
        assert!(matches!(Db::open(&m).unwrap_err(), Problem::BadMagic(_)));
        assert!(matches!(
            Db::open(b"hello world").unwrap_err(),
            Problem::BadMagic(_) | Problem::Truncated { .. }
        ));
    }

    #[test]
    fn bad_offsets_and_cycles_are_errors() {
        let f = sample();
        let db = Db::open(&f[..3 * PS]).unwrap();
        let b = db.bucket(db.root(), b"b").unwrap().unwrap();
        assert!(matches!(
            db.cursor(b).unwrap_err(),
            Problem::Truncated { page: 3, .. }
        ));

        let mut g = sample();
        g[3 * PS + PAGE_HEADER_LEN + 8..3 * PS + PAGE_HEADER_LEN + 12].fill(0xff); // ksize of k1
        let db = Db::open(&g).unwrap();
        let b = db.bucket(db.root(), b"b").unwrap().unwrap();
        assert!(db.cursor(b).unwrap().any(|e| e.is_err()));

        // Page 3 as a branch pointing at itself.
        let mut c = sample();
        c[3 * PS + 8..3 * PS + 10].copy_from_slice(&BRANCH_PAGE.to_le_bytes());
        c[3 * PS + PAGE_HEADER_LEN + 8..3 * PS + PAGE_HEADER_LEN + 16].fill(0);
        c[3 * PS + PAGE_HEADER_LEN + 8] = 3;
        c[3 * PS + PAGE_HEADER_LEN + 16..3 * PS + PAGE_HEADER_LEN + 32].fill(0);
        c[3 * PS + PAGE_HEADER_LEN + 24] = 3;
        let db = Db::open(&c).unwrap();
        let b = db.bucket(db.root(), b"b").unwrap().unwrap();
        let errs: Vec<_> = db.cursor(b).unwrap().filter_map(Result::err).collect();
        assert!(
            matches!(&errs[..], [Problem::Corrupt(m)] if m.contains("twice")),
            "{errs:?}"
        );
    }
}
