//! Builds the initramfs archive.
