//! Owned-buffer IO (monoio's `AsyncReadRent`/`AsyncWriteRent`) over a poll-based stream
//! (tokio's `AsyncRead`/`AsyncWrite`), so the HTTP/1.1 codec written for owned buffers also
//! runs over TLS, which terminates through tokio-rustls on monoio's poll-io bridge.

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::BufResult;

/// A poll-based stream seen through owned-buffer IO. Each write also flushes: TLS keeps
/// encrypted records in memory until flushed, and the HTTP/1.1 writer never flushes.
pub struct PollRent<T> {
    inner: T,
}

impl<T> PollRent<T> {
    /// Wraps a poll-based stream.
    pub fn new(inner: T) -> Self {
        Self { inner }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> PollRent<T> {
    /// Reads into `len` bytes at `ptr`; returns how many were filled.
    async fn read_raw(&mut self, ptr: *mut u8, len: usize) -> io::Result<usize> {
        // SAFETY: the caller passes a region it owns for the whole call (the owned buffer it
        // holds across this await), writable for `len` bytes.
        let region = unsafe { std::slice::from_raw_parts_mut(ptr.cast::<MaybeUninit<u8>>(), len) };
        let mut read = ReadBuf::uninit(region);
        poll_fn(|cx| Pin::new(&mut self.inner).poll_read(cx, &mut read)).await?;
        Ok(read.filled().len())
    }
}

impl<T: AsyncRead + Unpin> AsyncReadRent for PollRent<T> {
    async fn read<B: IoBufMut>(&mut self, mut buf: B) -> BufResult<usize, B> {
        let (ptr, len) = (buf.write_ptr(), buf.bytes_total());
        match self.read_raw(ptr, len).await {
            Ok(n) => {
                // SAFETY: `n` bytes from `write_ptr` were just written by the read.
                unsafe { buf.set_init(n) };
                (Ok(n), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }

    async fn readv<B: IoVecBufMut>(&mut self, mut buf: B) -> BufResult<usize, B> {
        // One buffer at a time is enough for a stream: read into the first one with room.
        let (ptr, count) = (buf.write_iovec_ptr(), buf.write_iovec_len());
        // SAFETY: an `IoVecBufMut` points at `count` valid iovecs.
        let iovecs = unsafe { std::slice::from_raw_parts(ptr, count) };
        let Some(first) = iovecs.iter().find(|v| v.iov_len > 0) else {
            return (Ok(0), buf);
        };
        match self.read_raw(first.iov_base.cast(), first.iov_len).await {
            Ok(n) => {
                // SAFETY: the first `n` bytes of the buffers were written (the skipped ones
                // before `first` are empty).
                unsafe { buf.set_init(n) };
                (Ok(n), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }
}

impl<T: AsyncWrite + Unpin> PollRent<T> {
    /// Writes what it can of `bytes`, then flushes.
    async fn write_raw(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = poll_fn(|cx| Pin::new(&mut self.inner).poll_write(cx, bytes)).await?;
        poll_fn(|cx| Pin::new(&mut self.inner).poll_flush(cx)).await?;
        Ok(n)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWriteRent for PollRent<T> {
    async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        // SAFETY: an `IoBuf` is readable for `bytes_init` bytes from `read_ptr`, and the
        // buffer is held across the write.
        let bytes = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let res = self.write_raw(bytes).await;
        (res, buf)
    }

    async fn writev<B: IoVecBuf>(&mut self, buf: B) -> BufResult<usize, B> {
        let (ptr, count) = (buf.read_iovec_ptr(), buf.read_iovec_len());
        // SAFETY: an `IoVecBuf` points at `count` valid iovecs.
        let iovecs = unsafe { std::slice::from_raw_parts(ptr, count) };
        let Some(first) = iovecs.iter().find(|v| v.iov_len > 0) else {
            return (Ok(0), buf);
        };
        // SAFETY: each iovec of an `IoVecBuf` is readable for its length.
        let bytes =
            unsafe { std::slice::from_raw_parts(first.iov_base.cast::<u8>(), first.iov_len) };
        let res = self.write_raw(bytes).await;
        (res, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| Pin::new(&mut self.inner).poll_flush(cx)).await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        poll_fn(|cx| Pin::new(&mut self.inner).poll_shutdown(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_on_local as run;
    use monoio::io::{AsyncReadRentExt, AsyncWriteRentExt};

    #[test]
    fn reads_into_spare_capacity_and_writes_all() {
        run(async {
            let (a, b) = tokio_pair();
            let mut a = PollRent::new(a);
            let mut b = PollRent::new(b);
            let (res, _) = a.write_all(b"hello world".to_vec()).await;
            res.unwrap();
            let mut buf = Vec::with_capacity(32);
            buf.extend_from_slice(b">>");
            let (res, slice) = b.read(buf.slice_mut(2..32)).await;
            let n = res.unwrap();
            let buf = slice.into_inner();
            assert_eq!(&buf[..2 + n], &b">>hello world"[..2 + n]);
            assert!(n > 0);
            let (res, exact) = b.read_exact(vec![0u8; 11 - n]).await;
            res.unwrap();
            assert_eq!(exact, b"hello world"[n..].to_vec());
        });
    }

    /// Two ends of a Unix socket pair, as poll-based streams.
    fn tokio_pair() -> (
        monoio::net::unix::stream_poll::UnixStreamPoll,
        monoio::net::unix::stream_poll::UnixStreamPoll,
    ) {
        use monoio::io::IntoPollIo;
        let (a, b) = monoio::net::UnixStream::pair().unwrap();
        (a.into_poll_io().unwrap(), b.into_poll_io().unwrap())
    }
}
