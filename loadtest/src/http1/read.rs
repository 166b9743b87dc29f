//! Reading from an owned-buffer stream into the spare capacity of a growing `Vec`.

use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::AsyncReadRent;

/// Spare capacity kept free before each read.
const MIN_SPARE: usize = 8 * 1024;

/// Reads once from `stream`, appending to `buf` (which grows as needed).
/// Returns the number of bytes read (0 = end of stream) and the buffer.
pub async fn read_more<S: AsyncReadRent>(
    stream: &mut S,
    mut buf: Vec<u8>,
) -> (std::io::Result<usize>, Vec<u8>) {
    if buf.capacity() - buf.len() < MIN_SPARE {
        buf.reserve(MIN_SPARE);
    }
    let len = buf.len();
    let slice: SliceMut<Vec<u8>> = buf.slice_mut(len..);
    let (res, slice) = stream.read(slice).await;
    (res, slice.into_inner())
}
