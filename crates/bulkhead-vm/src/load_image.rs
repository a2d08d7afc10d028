//! Writes the guest kernel file QEMU boots: the built `vmlinux` reduced to what QEMU loads. x86-64
//! `vmlinux` aligns its entry text, rodata and data to 2 MiB, and the linker stores that alignment inside
//! the `PT_LOAD` segments: as int3 bytes in the text (about 3 MiB: the entry text is 2 MiB-aligned on
//! both sides) and as zero bytes elsewhere (about 3 MiB), followed by ~5 MiB of symbols. QEMU maps the
//! whole file and keeps every segment's file bytes mapped for the VM's lifetime, so each QEMU holds all
//! of it resident. The load image keeps only the segments' page runs that are neither zero nor text
//! padding, packed one after the other, and no section headers or symbols. Fresh guest RAM is already
//! zero (and `-no-reboot` means a VM is never reset and reloaded), so QEMU builds the same guest memory
//! from it, except that the text padding, where no code lives, reads as zero instead of int3. Symbols
//! for oops decoding stay in `System.map`.

use std::ops::Range;

const PAGE: usize = 4096;
/// Runs of droppable pages shorter than this stay loaded: not worth a program header each.
const MIN_RUN_PAGES: usize = 16;
/// What the linker fills alignment gaps of executable segments with (int3).
const TEXT_FILL: u8 = 0xcc;
const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

#[derive(Debug, thiserror::Error)]
pub enum LoadImageError {
    #[error("not a little-endian ELF64 file")]
    NotElf64,
    #[error(
        "program header table at {offset} ({count} entries of {size} bytes) is outside the file"
    )]
    HeadersOutOfFile {
        offset: u64,
        count: usize,
        size: usize,
    },
    #[error("program header {index} points outside the file ({len} bytes)")]
    SegmentOutOfFile { index: usize, len: usize },
    #[error("{count} program headers after splitting do not fit ELF's 16-bit count")]
    TooManyHeaders { count: usize },
}

/// One program header, in ELF64 field order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Phdr {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

impl Phdr {
    fn parse(b: &[u8]) -> Phdr {
        Phdr {
            kind: u32_at(b, 0),
            flags: u32_at(b, 4),
            offset: u64_at(b, 8),
            vaddr: u64_at(b, 16),
            paddr: u64_at(b, 24),
            filesz: u64_at(b, 32),
            memsz: u64_at(b, 40),
            align: u64_at(b, 48),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        for field in [
            self.offset,
            self.vaddr,
            self.paddr,
            self.filesz,
            self.memsz,
            self.align,
        ] {
            out.extend_from_slice(&field.to_le_bytes());
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// A header of the new file and the bytes it points at in the old one.
struct Piece {
    header: Phdr,
    data: Range<usize>,
}

/// The load image of `elf` (see the module doc): same ELF header and entry point, program headers whose
/// `PT_LOAD`s skip runs of at least [`MIN_RUN_PAGES`] zero (or, in text, int3 padding) pages, their data
/// packed after the headers, no sections.
pub fn load_image(elf: &[u8]) -> Result<Vec<u8>, LoadImageError> {
    if elf.len() < EHDR_SIZE || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return Err(LoadImageError::NotElf64);
    }
    let phoff = u64_at(elf, 0x20);
    let phentsize = usize::from(u16::from_le_bytes([elf[0x36], elf[0x37]]));
    let phnum = usize::from(u16::from_le_bytes([elf[0x38], elf[0x39]]));
    let table = usize::try_from(phoff)
        .ok()
        .filter(|&off| phentsize == PHDR_SIZE && off.saturating_add(phnum * PHDR_SIZE) <= elf.len())
        .ok_or(LoadImageError::HeadersOutOfFile {
            offset: phoff,
            count: phnum,
            size: phentsize,
        })?;

    let mut pieces = Vec::with_capacity(phnum);
    for index in 0..phnum {
        let at = table + index * PHDR_SIZE;
        let ph = Phdr::parse(&elf[at..at + PHDR_SIZE]);
        let data = usize::try_from(ph.offset)
            .ok()
            .zip(usize::try_from(ph.filesz).ok())
            .and_then(|(off, size)| Some(off..off.checked_add(size)?))
            .filter(|range| range.end <= elf.len())
            .ok_or(LoadImageError::SegmentOutOfFile {
                index,
                len: elf.len(),
            })?;
        if ph.kind == PT_LOAD {
            pieces.extend(split(&ph, &elf[data.clone()], data.start));
        } else {
            pieces.push(Piece { header: ph, data });
        }
    }
    let count = u16::try_from(pieces.len()).map_err(|_| LoadImageError::TooManyHeaders {
        count: pieces.len(),
    })?;

    let mut out = elf[..EHDR_SIZE].to_vec();
    out[0x20..0x28].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
    // No section headers: e_shoff, e_shnum, e_shstrndx.
    out[0x28..0x30].fill(0);
    out[0x3c..0x40].fill(0);
    out[0x38..0x3a].copy_from_slice(&count.to_le_bytes());
    // Data offsets: page-aligned like the original segments (offset congruent to the address).
    let mut next = (EHDR_SIZE + pieces.len() * PHDR_SIZE).next_multiple_of(PAGE);
    let mut offsets = Vec::with_capacity(pieces.len());
    for piece in &pieces {
        let align = if piece.header.kind == PT_LOAD {
            PAGE
        } else {
            8
        };
        let at = next.next_multiple_of(align) + (piece.data.start % align);
        offsets.push(at);
        next = at + piece.data.len();
    }
    for (piece, &at) in pieces.iter().zip(&offsets) {
        Phdr {
            offset: if piece.data.is_empty() { 0 } else { at as u64 },
            ..piece.header
        }
        .write(&mut out);
    }
    for (piece, &at) in pieces.iter().zip(&offsets) {
        out.resize(at, 0);
        out.extend_from_slice(&elf[piece.data.clone()]);
    }
    Ok(out)
}

/// The program headers loading only the page runs of one `PT_LOAD` (`data`, found at `base` in the file)
/// that are neither zero nor text padding. The last keeps the segment's zero-filled tail (`memsz` beyond the file data, i.e. bss),
/// which QEMU clears. A segment of zeros only becomes one header with no file data.
fn split(ph: &Phdr, data: &[u8], base: usize) -> Vec<Piece> {
    let padding = if ph.flags & PF_X != 0 { TEXT_FILL } else { 0 };
    let runs = loaded_runs(data, padding);
    if runs.is_empty() {
        return vec![Piece {
            header: Phdr { filesz: 0, ..*ph },
            data: base..base,
        }];
    }
    let last = runs.len() - 1;
    runs.into_iter()
        .enumerate()
        .map(|(i, run)| {
            let start = run.start as u64;
            let filesz = run.len() as u64;
            Piece {
                header: Phdr {
                    vaddr: ph.vaddr + start,
                    paddr: ph.paddr + start,
                    filesz,
                    memsz: if i == last { ph.memsz - start } else { filesz },
                    align: PAGE as u64,
                    ..*ph
                },
                data: base + run.start..base + run.end,
            }
        })
        .collect()
}

/// The byte ranges of a segment's file data that must still be loaded: everything but page-aligned runs
/// of at least [`MIN_RUN_PAGES`] pages that are all zero or all `padding` (a partial last page always
/// stays).
fn loaded_runs(data: &[u8], padding: u8) -> Vec<Range<usize>> {
    let droppable = |page: &[u8]| {
        let first = page[0];
        (first == 0 || first == padding) && page.iter().all(|&b| b == first)
    };
    let mut runs = Vec::new();
    let mut start = 0;
    let mut page = 0;
    while page + PAGE <= data.len() {
        let mut end = page;
        while end + PAGE <= data.len() && droppable(&data[end..end + PAGE]) {
            end += PAGE;
        }
        if (end - page) / PAGE >= MIN_RUN_PAGES {
            if page > start {
                runs.push(start..page);
            }
            start = end;
        }
        page = end.max(page + PAGE);
    }
    if start < data.len() {
        runs.push(start..data.len());
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: &[u8] = b"\x04\0\0\0\x08\0\0\0\x12\0\0\0Xen\0";

    /// A minimal ELF64 with one `PT_LOAD` of `data` at file offset 0x1000, a `PT_NOTE` inside it,
    /// and section-header fields set.
    fn elf_with(data: &[u8], memsz: u64) -> Vec<u8> {
        let mut elf = vec![0u8; 0x1000];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x18..0x20].copy_from_slice(&0x100_0000u64.to_le_bytes());
        elf[0x20..0x28].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
        elf[0x28..0x30].copy_from_slice(&0x1234u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&30u16.to_le_bytes());
        let load = Phdr {
            kind: PT_LOAD,
            flags: 5,
            offset: 0x1000,
            vaddr: 0xffff_ffff_8100_0000,
            paddr: 0x100_0000,
            filesz: data.len() as u64,
            memsz,
            align: 0x20_0000,
        };
        let note = Phdr {
            kind: 4,
            flags: 4,
            offset: 0x1000,
            vaddr: 0xffff_ffff_8100_0000,
            paddr: 0x100_0000,
            filesz: NOTE.len() as u64,
            memsz: NOTE.len() as u64,
            align: 4,
        };
        let mut table = Vec::new();
        load.write(&mut table);
        note.write(&mut table);
        elf[EHDR_SIZE..EHDR_SIZE + table.len()].copy_from_slice(&table);
        elf.extend_from_slice(data);
        elf[0x1000..0x1000 + NOTE.len()].copy_from_slice(NOTE);
        elf
    }

    fn headers(elf: &[u8]) -> Vec<Phdr> {
        let off = u64_at(elf, 0x20) as usize;
        let n = usize::from(u16::from_le_bytes([elf[0x38], elf[0x39]]));
        (0..n)
            .map(|i| Phdr::parse(&elf[off + i * PHDR_SIZE..off + (i + 1) * PHDR_SIZE]))
            .collect()
    }

    /// The guest memory a loader builds from the `PT_LOAD` headers in zero-initialised RAM.
    fn memory_image(elf: &[u8], base: u64, size: usize) -> Vec<u8> {
        let mut ram = vec![0u8; size];
        for ph in headers(elf).iter().filter(|p| p.kind == PT_LOAD) {
            assert!(ph.memsz >= ph.filesz);
            assert!((ph.paddr - base + ph.memsz) as usize <= size);
            let at = (ph.paddr - base) as usize;
            let file = &elf[ph.offset as usize..(ph.offset + ph.filesz) as usize];
            ram[at..at + file.len()].copy_from_slice(file);
        }
        ram
    }

    #[test]
    fn packs_the_loaded_runs_and_keeps_the_memory_image() {
        let mut data = vec![0x90u8; 3 * PAGE];
        data.extend(vec![0u8; 20 * PAGE]);
        data.extend(vec![0x22u8; 2 * PAGE]);
        // A short zero run stays loaded, and so does a partial last page.
        data.extend(vec![0u8; 3 * PAGE]);
        data.extend(vec![0x11u8; 100]);
        let memsz = data.len() as u64 + 5 * PAGE as u64;
        let original = elf_with(&data, memsz);

        let image = load_image(&original).unwrap();
        // Entry point kept, section headers gone, 20 zero pages no longer in the file.
        assert_eq!(&image[..0x20], &original[..0x20]);
        assert_eq!(u64_at(&image, 0x28), 0);
        assert!(image.len() < original.len() - 19 * PAGE);
        let phdrs = headers(&image);
        let loads: Vec<&Phdr> = phdrs.iter().filter(|p| p.kind == PT_LOAD).collect();
        assert_eq!(loads.len(), 2);
        assert_eq!(loads[0].filesz, 3 * PAGE as u64);
        assert_eq!(loads[1].paddr, 0x100_0000 + 23 * PAGE as u64);
        // The last piece still ends where the segment's memory did.
        assert_eq!(loads[1].paddr + loads[1].memsz, 0x100_0000 + memsz);
        for ph in loads {
            assert_eq!(ph.offset % PAGE as u64, ph.vaddr % PAGE as u64);
        }
        let note = phdrs.iter().find(|p| p.kind == 4).unwrap();
        assert_eq!(
            &image[note.offset as usize..(note.offset + note.filesz) as usize],
            NOTE
        );
        let size = memsz as usize;
        assert_eq!(
            memory_image(&image, 0x100_0000, size),
            memory_image(&original, 0x100_0000, size)
        );
    }

    #[test]
    fn keeps_short_zero_runs_loaded() {
        let mut data = vec![0x90u8; 4 * PAGE];
        data.extend(vec![0u8; (MIN_RUN_PAGES - 1) * PAGE]);
        data.extend(vec![0x90u8; PAGE]);
        let original = elf_with(&data, data.len() as u64);
        let image = load_image(&original).unwrap();
        let loads: Vec<Phdr> = headers(&image)
            .into_iter()
            .filter(|p| p.kind == PT_LOAD)
            .collect();
        assert_eq!(loads.len(), 1);
        assert_eq!(loads[0].filesz, data.len() as u64);
        let size = data.len();
        assert_eq!(
            memory_image(&image, 0x100_0000, size),
            memory_image(&original, 0x100_0000, size)
        );
    }

    #[test]
    fn drops_int3_padding_in_text_only() {
        let mut data = vec![0x90u8; 2 * PAGE];
        data.extend(vec![TEXT_FILL; MIN_RUN_PAGES * PAGE]);
        data.extend(vec![0u8; 2 * PAGE]);
        data.extend(vec![0x90u8; PAGE]);
        let text = elf_with(&data, data.len() as u64);
        let image = load_image(&text).unwrap();
        let loads: Vec<Phdr> = headers(&image)
            .into_iter()
            .filter(|p| p.kind == PT_LOAD)
            .collect();
        assert_eq!(loads.len(), 2, "{loads:?}");
        assert_eq!(loads[0].filesz, 2 * PAGE as u64);
        assert_eq!(
            loads[1].paddr,
            0x100_0000 + (MIN_RUN_PAGES as u64 + 4) * PAGE as u64
        );
        // The guest sees the same memory, with the padding (and the zero pages next to it) as zero.
        let size = data.len();
        let mut expected = memory_image(&text, 0x100_0000, size);
        expected[2 * PAGE..(MIN_RUN_PAGES + 2) * PAGE].fill(0);
        assert_eq!(memory_image(&image, 0x100_0000, size), expected);

        // In a segment that is not executable, 0xcc bytes are data and stay.
        let mut data_segment = text.clone();
        data_segment[EHDR_SIZE + 4..EHDR_SIZE + 8].copy_from_slice(&6u32.to_le_bytes());
        let image = load_image(&data_segment).unwrap();
        assert_eq!(
            memory_image(&image, 0x100_0000, size),
            memory_image(&data_segment, 0x100_0000, size)
        );
    }

    #[test]
    fn an_all_zero_segment_only_clears_memory() {
        let data = vec![0u8; 32 * PAGE];
        let mut original = elf_with(&data, 40 * PAGE as u64);
        // The note sits in the segment; zero it too for this case.
        original[0x1000..0x1000 + NOTE.len()].fill(0);
        let image = load_image(&original).unwrap();
        let load = headers(&image)[0];
        assert_eq!((load.filesz, load.memsz), (0, 40 * PAGE as u64));
    }

    #[test]
    fn rejects_what_is_not_elf64_or_points_outside_the_file() {
        assert!(matches!(
            load_image(b"#!/bin/sh\n"),
            Err(LoadImageError::NotElf64)
        ));
        let mut elf = elf_with(&[0x90; PAGE], PAGE as u64);
        elf.truncate(0x1000 + 10);
        assert!(matches!(
            load_image(&elf),
            Err(LoadImageError::SegmentOutOfFile { index: 0, .. })
        ));
    }
}
