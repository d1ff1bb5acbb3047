//! One subscriber's forwarded stream: rewrite state, SRTP session and socket (`Output`).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::rewrite::{mid_element, Extensions, Packet, Rewrite, NOT_NEGOTIATED};
use crate::srtp::SrtpSession;

/// A UDP destination: our own duplicate of the ICE socket (so a socket closed by aiortc is
/// never confused with a later one that reuses its number) and the remote address.
struct Destination {
    socket: OwnedFd,
    address: libc::sockaddr_storage,
    address_len: libc::socklen_t,
}

impl Destination {
    fn new(fd: i32, address: SocketAddr) -> io::Result<Self> {
        // SAFETY: dup of a descriptor the caller owns; the copy is ours to close.
        let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if copy < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `copy` is a fresh descriptor nobody else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(copy) };
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let address_len = match address {
            SocketAddr::V4(v4) => {
                // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
                let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = v4.port().to_be();
                sin.sin_addr = libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(v6) => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = v6.port().to_be();
                sin6.sin6_addr = libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                };
                sin6.sin6_scope_id = v6.scope_id();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        Ok(Self {
            socket,
            address: storage,
            address_len: address_len as libc::socklen_t,
        })
    }

    /// Send the queued datagrams with as few `sendmmsg` calls as the kernel allows, without
    /// blocking; returns how many left. A full socket buffer drops the rest, as it would drop
    /// any datagram.
    fn send_all(&self, queue: &SendQueue) -> usize {
        let count = queue.lengths.len();
        let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(count);
        let mut start = 0;
        for &length in &queue.lengths {
            iovecs.push(libc::iovec {
                iov_base: queue.data[start..].as_ptr() as *mut libc::c_void,
                iov_len: length,
            });
            start += length;
        }
        // SAFETY: all-zero is a valid mmsghdr; the pointers set below stay valid for the call.
        let mut messages: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; count];
        for (message, iovec) in messages.iter_mut().zip(iovecs.iter_mut()) {
            message.msg_hdr.msg_name = &self.address as *const _ as *mut libc::c_void;
            message.msg_hdr.msg_namelen = self.address_len;
            message.msg_hdr.msg_iov = iovec;
            message.msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < count {
            // SAFETY: `messages[sent..]` are initialised mmsghdrs pointing at live buffers.
            let n = unsafe {
                libc::sendmmsg(
                    self.socket.as_raw_fd(),
                    messages[sent..].as_mut_ptr(),
                    (count - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            sent += n as usize;
        }
        sent
    }
}

/// Protected datagrams waiting for one `sendmmsg`: contiguous bytes and their lengths.
#[derive(Default)]
struct SendQueue {
    data: Vec<u8>,
    lengths: Vec<usize>,
}

/// One subscriber's forwarded stream: rewrite state, the subscriber transport's SRTP session
/// and socket, and what was sent (read by the Python side for sender reports and metrics).
#[pyclass(module = "switchboard_sfu._fastpath")]
pub struct Output {
    rewrite: Rewrite,
    srtp: Py<SrtpSession>,
    destination: Destination,
    buffer: Vec<u8>,
    queue: SendQueue,
    /// Packets and payload bytes sent.
    #[pyo3(get)]
    packets_sent: u64,
    #[pyo3(get)]
    bytes_sent: u64,
    /// Datagrams the socket refused (full buffer, unreachable peer).
    #[pyo3(get)]
    send_failures: u64,
    /// Subscriber-side sequence number and timestamp of the newest packet sent.
    #[pyo3(get)]
    last_sequence_number: u16,
    #[pyo3(get)]
    last_timestamp: u32,
}

impl Output {
    /// Rewrite and protect one packet into the send queue; its payload size, None when it is
    /// not for this subscriber (older than its stream, codec not negotiated) or SRTP failed.
    pub fn queue(&mut self, packet: &Packet, extended_seq: i64) -> Option<usize> {
        if extended_seq < self.rewrite.start {
            return None; // older than where this subscriber's stream began
        }
        let (sequence_number, timestamp) = self.rewrite.write(packet, &mut self.buffer)?;
        if self.srtp.get().protect(&mut self.buffer).is_err() {
            self.send_failures += 1;
            return None;
        }
        self.queue.data.extend_from_slice(&self.buffer);
        self.queue.lengths.push(self.buffer.len());
        // Newest packet (in 16-bit serial order): what sender reports extrapolate from.
        if sequence_number.wrapping_sub(self.last_sequence_number) < 0x8000 {
            self.last_sequence_number = sequence_number;
            self.last_timestamp = timestamp;
        }
        self.packets_sent += 1;
        self.bytes_sent += packet.payload.len() as u64;
        Some(packet.payload.len())
    }

    /// Send everything queued (one `sendmmsg` for a whole burst of packets).
    pub fn flush(&mut self) {
        let queued = self.queue.lengths.len();
        if queued == 0 {
            return;
        }
        let sent = self.destination.send_all(&self.queue);
        self.send_failures += (queued - sent) as u64;
        self.queue.data.clear();
        self.queue.lengths.clear();
    }
}

pub fn packet_from<'a>(
    payload: &'a [u8],
    payload_type: u8,
    marker: bool,
    sequence_number: u16,
    timestamp: u32,
    padding_size: u8,
    abs_send_time: Option<u32>,
    audio_level: Option<(bool, u8)>,
) -> Packet<'a> {
    Packet {
        payload_type,
        marker,
        sequence_number,
        timestamp,
        payload,
        padding_size,
        abs_send_time,
        audio_level,
    }
}

#[pymethods]
impl Output {
    /// `socket_fd`/`host`/`port`: the subscriber's ICE socket and remote address;
    /// `payload_types`: publisher → subscriber payload types; the rest as in `Rewrite`.
    #[new]
    #[pyo3(signature = (*, srtp, socket_fd, host, port, ssrc, payload_types, seq_offset,
        ts_offset, start, mid_id, mid, abs_send_time_id, audio_level_id, last_sequence_number))]
    fn new(
        srtp: Py<SrtpSession>,
        socket_fd: i32,
        host: &str,
        port: u16,
        ssrc: u32,
        payload_types: Vec<(u8, u8)>,
        seq_offset: u16,
        ts_offset: u32,
        start: i64,
        mid_id: u8,
        mid: &str,
        abs_send_time_id: u8,
        audio_level_id: u8,
        last_sequence_number: u16,
    ) -> PyResult<Self> {
        let ip: IpAddr = host
            .parse()
            .map_err(|_| PyValueError::new_err(format!("not an IP address: {host}")))?;
        if mid.len() > 16 || mid_id > 14 || abs_send_time_id > 14 || audio_level_id > 14 {
            return Err(PyValueError::new_err(
                "extension not expressible in one-byte form",
            ));
        }
        let mut table = [NOT_NEGOTIATED; 128];
        for (publisher, subscriber) in payload_types {
            if publisher > 127 || subscriber > 127 {
                return Err(PyValueError::new_err("payload type out of range"));
            }
            table[publisher as usize] = subscriber;
        }
        let destination = Destination::new(socket_fd, SocketAddr::new(ip, port))
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(Self {
            rewrite: Rewrite {
                ssrc,
                payload_types: table,
                seq_offset,
                ts_offset,
                start,
                vp8: None,
                extensions: Extensions {
                    mid_element: mid_element(mid_id, mid),
                    abs_send_time_id,
                    audio_level_id,
                },
            },
            srtp,
            destination,
            buffer: Vec::with_capacity(1500),
            queue: SendQueue::default(),
            packets_sent: 0,
            bytes_sent: 0,
            send_failures: 0,
            last_sequence_number,
            last_timestamp: 0,
        })
    }

    /// The unprotected packet this output would send (the reference comparison's input).
    #[pyo3(signature = (payload, *, payload_type, marker, sequence_number, timestamp,
        padding_size=0, abs_send_time=None, audio_level=None))]
    fn write<'py>(
        &self,
        py: Python<'py>,
        payload: &[u8],
        payload_type: u8,
        marker: bool,
        sequence_number: u16,
        timestamp: u32,
        padding_size: u8,
        abs_send_time: Option<u32>,
        audio_level: Option<(bool, u8)>,
    ) -> Option<Bound<'py, PyBytes>> {
        let packet = packet_from(
            payload,
            payload_type,
            marker,
            sequence_number,
            timestamp,
            padding_size,
            abs_send_time,
            audio_level,
        );
        let mut out = Vec::with_capacity(payload.len() + 64);
        self.rewrite.write(&packet, &mut out)?;
        Some(PyBytes::new(py, &out))
    }

    /// Forward one packet to this subscriber alone (the first packet of its stream).
    #[pyo3(signature = (payload, *, payload_type, marker, sequence_number, timestamp,
        extended_seq, padding_size=0, abs_send_time=None, audio_level=None))]
    fn send(
        &mut self,
        payload: &[u8],
        payload_type: u8,
        marker: bool,
        sequence_number: u16,
        timestamp: u32,
        extended_seq: i64,
        padding_size: u8,
        abs_send_time: Option<u32>,
        audio_level: Option<(bool, u8)>,
    ) -> bool {
        let packet = packet_from(
            payload,
            payload_type,
            marker,
            sequence_number,
            timestamp,
            padding_size,
            abs_send_time,
            audio_level,
        );
        let queued = self.queue(&packet, extended_seq).is_some();
        self.flush();
        queued
    }
}
