//! Git's blob ids, computed here: the SHA-1 of `blob <length>\0` and the bytes,
//! as `git hash-object` gives. Hashes compared between nodes use them, so they
//! must stay the same value on every node and every version.

use sha1::{Digest, Sha1};

/// The 20-byte id Git gives a blob holding `data`.
pub(crate) fn blob_id(data: &[u8]) -> [u8; 20] {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", data.len()).as_bytes());
    hasher.update(data);
    hasher.finalize().into()
}

/// [`blob_id`] in 40 lowercase hex digits, as Git prints it.
pub(crate) fn blob_hex(data: &[u8]) -> String {
    blob_id(data).iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_ones_git_hash_object_prints() {
        // Each pinned from `printf … | git hash-object --stdin`.
        let cases: [(&[u8], &str); 4] = [
            (b"", "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"),
            (b"hello\n", "ce013625030ba8dba906f756967f9e9ca394464a"),
            (b"kind: Node\n", "e00781fdad1e198ce4a00d52b29748cc7571454c"),
            (b"a\0b\xff", "f63bd877fcd57b07f0339277c3de5bf7bd442cac"),
        ];
        for (data, id) in cases {
            assert_eq!(blob_hex(data), id, "{data:?}");
        }
    }
}
