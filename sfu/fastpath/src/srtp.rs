//! SRTP through the libsrtp session of a pylibsrtp `Session` object.
//!
//! The forwarding core protects packets with the very session aiortc uses for the same
//! transport, reached by its C function pointers: the rollover counter and replay state stay
//! one, so packets from this module and from aiortc's own path interleave correctly and the
//! output is byte for byte what `Session.protect` returns.

use std::os::raw::{c_int, c_void};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// `srtp_err_status_t srtp_protect(srtp_t ctx, void *rtp_hdr, int *len_ptr)` (libsrtp 2.x);
/// `srtp_unprotect` has the same shape.
type SrtpFn = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_int) -> c_int;

/// Room libsrtp may append (SRTP_MAX_TRAILER_LEN: tag and MKI).
pub const MAX_TRAILER: usize = 16 + 128;

/// A libsrtp session owned by a Python object that this keeps alive.
#[pyclass(frozen, module = "switchboard_sfu._fastpath")]
pub struct SrtpSession {
    ctx: usize,
    protect: SrtpFn,
    unprotect: SrtpFn,
    _owner: PyObject,
}

impl SrtpSession {
    /// Protect the RTP packet in `buf` in place (it grows by the authentication tag).
    pub fn protect(&self, buf: &mut Vec<u8>) -> Result<(), c_int> {
        self.call(self.protect, buf)
    }

    /// Verify and decrypt the SRTP packet in `buf` in place.
    pub fn unprotect(&self, buf: &mut Vec<u8>) -> Result<(), c_int> {
        self.call(self.unprotect, buf)
    }

    fn call(&self, function: SrtpFn, buf: &mut Vec<u8>) -> Result<(), c_int> {
        let len = buf.len();
        buf.reserve(MAX_TRAILER);
        let mut out_len = len as c_int;
        // SAFETY: ctx is the live srtp_t of `_owner` (kept alive by this object); the buffer
        // has `len` initialised bytes and MAX_TRAILER spare ones, all libsrtp may write.
        let status = unsafe {
            function(
                self.ctx as *mut c_void,
                buf.as_mut_ptr() as *mut c_void,
                &mut out_len,
            )
        };
        if status != 0 {
            return Err(status);
        }
        let out_len = out_len as usize;
        assert!(
            out_len <= len + MAX_TRAILER,
            "libsrtp wrote past its trailer"
        );
        // SAFETY: libsrtp initialised the first out_len bytes (checked to fit the capacity).
        unsafe { buf.set_len(out_len) };
        Ok(())
    }
}

#[pymethods]
impl SrtpSession {
    /// `owner` is the Python object that owns the session (kept alive as long as this);
    /// `ctx` the `srtp_t` address, `protect`/`unprotect` the libsrtp functions' addresses.
    #[new]
    fn new(owner: PyObject, ctx: usize, protect: usize, unprotect: usize) -> PyResult<Self> {
        if ctx == 0 || protect == 0 || unprotect == 0 {
            return Err(PyValueError::new_err("null SRTP session or function"));
        }
        // SAFETY: the caller passes the addresses of libsrtp's srtp_protect/srtp_unprotect.
        let (protect, unprotect) = unsafe {
            (
                std::mem::transmute::<usize, SrtpFn>(protect),
                std::mem::transmute::<usize, SrtpFn>(unprotect),
            )
        };
        Ok(Self {
            ctx,
            protect,
            unprotect,
            _owner: owner,
        })
    }

    /// Protect one RTP packet (for tests: the forwarding path protects in place).
    #[pyo3(name = "protect")]
    fn py_protect<'py>(&self, py: Python<'py>, packet: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let mut buf = packet.to_vec();
        self.protect(&mut buf)
            .map_err(|status| PyValueError::new_err(format!("srtp_protect failed: {status}")))?;
        Ok(PyBytes::new(py, &buf))
    }
}
