use std::{
    ffi::c_void,
    fs::{File, OpenOptions},
    io,
    os::fd::{AsRawFd, FromRawFd as _, OwnedFd},
    ptr::{self, NonNull},
    time::{Duration, Instant},
};

use libc::{Ioctl, c_int, c_ulong};

use super::{LOOP_ITERATIONS, RUNNING_HLT_LINE, RUNNING_LOOP_LINE};

// ioctl numbers from <linux/kvm.h>, built the way <asm-generic/ioctl.h> builds them.
const KVMIO: Ioctl = 0xAE;
const IOC_WRITE: Ioctl = 1;
const IOC_READ: Ioctl = 2;

const fn io(nr: Ioctl) -> Ioctl {
    (KVMIO << 8) | nr
}
const fn ioc(dir: Ioctl, nr: Ioctl, size: usize) -> Ioctl {
    (dir << 30) | ((size as Ioctl) << 16) | (KVMIO << 8) | nr
}

const KVM_GET_API_VERSION: Ioctl = io(0x00);
const KVM_CREATE_VM: Ioctl = io(0x01);
const KVM_GET_VCPU_MMAP_SIZE: Ioctl = io(0x04);
const KVM_CREATE_VCPU: Ioctl = io(0x41);
const KVM_SET_USER_MEMORY_REGION: Ioctl = ioc(IOC_WRITE, 0x46, size_of::<UserspaceMemoryRegion>());
const KVM_RUN: Ioctl = io(0x80);
const KVM_SET_REGS: Ioctl = ioc(IOC_WRITE, 0x82, size_of::<Regs>());
const KVM_GET_SREGS: Ioctl = ioc(IOC_READ, 0x83, size_of::<Sregs>());
const KVM_SET_SREGS: Ioctl = ioc(IOC_WRITE, 0x84, size_of::<Sregs>());

// Checked against the values the C headers produce (kernel 6.18 UAPI).
const _: () = {
    assert!(KVM_GET_API_VERSION == 0xAE00);
    assert!(KVM_CREATE_VM == 0xAE01);
    assert!(KVM_GET_VCPU_MMAP_SIZE == 0xAE04);
    assert!(KVM_CREATE_VCPU == 0xAE41);
    assert!(KVM_SET_USER_MEMORY_REGION == 0x4020_AE46);
    assert!(KVM_RUN == 0xAE80);
    assert!(KVM_SET_REGS == 0x4090_AE82);
    assert!(KVM_GET_SREGS == 0x8138_AE83);
    assert!(KVM_SET_SREGS == 0x4138_AE84);
};

const KVM_API_VERSION: c_int = 12;
const KVM_EXIT_HLT: u32 = 5;
/// `kvm_run.exit_reason` (after `request_interrupt_window`, `immediate_exit`, `padding1[6]`).
const EXIT_REASON_OFFSET: usize = 8;

const PAGE: usize = 4096;
const GUEST_CODE_ADDR: u64 = 0x1000;

/// The guest, in real mode at `GUEST_CODE_ADDR`:
/// `hlt; mov ecx, LOOP_ITERATIONS; 1: dec ecx; jnz 1b; hlt`.
fn guest_code() -> [u8; 12] {
    let [n0, n1, n2, n3] = LOOP_ITERATIONS.to_le_bytes();
    [
        0xF4, // hlt
        0x66, 0xB9, n0, n1, n2, n3, // mov ecx, imm32 (0x66: 32-bit operand in real mode)
        0x66, 0x49, // dec ecx
        0x75, 0xFC, // jnz -4 (back to dec)
        0xF4, // hlt
    ]
}

/// `struct kvm_userspace_memory_region`.
#[repr(C)]
struct UserspaceMemoryRegion {
    slot: u32,
    flags: u32,
    guest_phys_addr: u64,
    memory_size: u64,
    userspace_addr: u64,
}

/// `struct kvm_regs` (x86): rax rbx rcx rdx rsi rdi rsp rbp r8..r15, then rip, rflags.
#[repr(C)]
#[derive(Default)]
struct Regs {
    general: [u64; 16],
    rip: u64,
    rflags: u64,
}

/// `struct kvm_segment`.
#[repr(C)]
#[derive(Default)]
struct Segment {
    base: u64,
    limit: u32,
    selector: u16,
    type_: u8,
    present: u8,
    dpl: u8,
    db: u8,
    s: u8,
    l: u8,
    g: u8,
    avl: u8,
    unusable: u8,
    padding: u8,
}

/// `struct kvm_sregs` (x86): `cs` first; the rest (7 more segments, gdt, idt, control
/// registers, efer, apic base, interrupt bitmap) is passed back to the kernel untouched.
#[repr(C)]
struct Sregs {
    cs: Segment,
    rest: [u64; 36],
}

const _: () = {
    assert!(size_of::<UserspaceMemoryRegion>() == 32);
    assert!(size_of::<Regs>() == 144);
    assert!(size_of::<Segment>() == 24);
    assert!(std::mem::offset_of!(Segment, selector) == 12);
    assert!(size_of::<Sregs>() == 312);
};

#[derive(Debug, thiserror::Error)]
pub(super) enum ProbeError {
    #[error("opening /dev/kvm")]
    Open(#[source] io::Error),
    #[error("{name}")]
    Ioctl {
        name: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("KVM API version {0}, expected {KVM_API_VERSION}")]
    ApiVersion(c_int),
    #[error("mmap of {what}")]
    Mmap {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("KVM_RUN exited with reason {reason} ({name}), expected {KVM_EXIT_HLT} (HLT)")]
    UnexpectedExit { reason: u32, name: &'static str },
}

fn exit_name(reason: u32) -> &'static str {
    match reason {
        0 => "UNKNOWN",
        1 => "EXCEPTION",
        2 => "IO",
        6 => "MMIO",
        8 => "SHUTDOWN",
        9 => "FAIL_ENTRY",
        10 => "INTR",
        17 => "INTERNAL_ERROR",
        _ => "see linux/kvm.h",
    }
}

/// The `_IO` requests this probe uses: their argument is an integer, never a pointer.
#[derive(Clone, Copy)]
enum ValueRequest {
    GetApiVersion,
    CreateVm,
    GetVcpuMmapSize,
    CreateVcpu,
    Run,
}

impl ValueRequest {
    fn code_and_name(self) -> (Ioctl, &'static str) {
        match self {
            Self::GetApiVersion => (KVM_GET_API_VERSION, "KVM_GET_API_VERSION"),
            Self::CreateVm => (KVM_CREATE_VM, "KVM_CREATE_VM"),
            Self::GetVcpuMmapSize => (KVM_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE"),
            Self::CreateVcpu => (KVM_CREATE_VCPU, "KVM_CREATE_VCPU"),
            Self::Run => (KVM_RUN, "KVM_RUN"),
        }
    }
}

/// An ioctl whose argument is a plain integer (VM type 0, vCPU id 0, or unused).
fn ioctl_value(fd: &impl AsRawFd, request: ValueRequest) -> Result<c_int, ProbeError> {
    let (code, name) = request.code_and_name();
    let arg: c_ulong = 0;
    // SAFETY: every `ValueRequest` is an `_IO` request that takes an integer argument
    // and never dereferences it; `fd` is an open descriptor we own.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), code, arg) };
    ioctl_result(ret, name)
}

/// An ioctl's return value, or the error it set.
fn ioctl_result(ret: c_int, name: &'static str) -> Result<c_int, ProbeError> {
    if ret < 0 {
        Err(ProbeError::Ioctl {
            name,
            source: io::Error::last_os_error(),
        })
    } else {
        Ok(ret)
    }
}

/// An ioctl that reads or writes one `T` at `arg`.
///
/// # Safety
/// `code` must be an ioctl whose argument is a pointer to exactly one `T`.
unsafe fn ioctl_ptr<T>(
    fd: &impl AsRawFd,
    code: Ioctl,
    name: &'static str,
    arg: *mut T,
) -> Result<(), ProbeError> {
    // SAFETY: the caller guarantees `code` takes a `*mut T`; `arg` points to a live `T`.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), code, arg) };
    ioctl_result(ret, name).map(drop)
}

/// A descriptor an ioctl just created (VM, vCPU).
fn new_fd(raw: c_int) -> OwnedFd {
    // SAFETY: `raw` was just returned by a successful KVM_CREATE_* ioctl: it is an open
    // descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// An mmap'ed region, unmapped on drop.
struct Mapping {
    ptr: NonNull<c_void>,
    len: usize,
}

impl Mapping {
    /// `len` bytes of fresh read-write memory: anonymous, or `fd`'s shared mapping.
    fn new(what: &'static str, len: usize, fd: Option<&OwnedFd>) -> Result<Self, ProbeError> {
        let (flags, raw_fd) = match fd {
            Some(fd) => (libc::MAP_SHARED, fd.as_raw_fd()),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a new mapping at an address the kernel chooses (NULL hint), so no
        // existing memory is touched; the result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw_fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(ProbeError::Mmap {
                what,
                source: io::Error::last_os_error(),
            });
        }
        let ptr = NonNull::new(ptr).ok_or(ProbeError::Mmap {
            what,
            source: io::Error::other("mmap returned NULL"),
        })?;
        Ok(Self { ptr, len })
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.len, "write past the mapping");
        // SAFETY: the range is inside our live, writable mapping (checked above) and
        // nothing else in this process references it.
        unsafe {
            let dst = self.ptr.as_ptr().cast::<u8>().add(offset);
            ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
        }
    }

    fn read_u32(&self, offset: usize) -> u32 {
        assert!(offset + size_of::<u32>() <= self.len && offset.is_multiple_of(align_of::<u32>()));
        // SAFETY: in bounds and aligned (checked above; the mapping is page-aligned).
        // Volatile, because the kernel writes this shared memory behind our back.
        unsafe { ptr::read_volatile(self.ptr.as_ptr().byte_add(offset).cast::<u32>()) }
    }

    fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned and are unmapped only here.
        unsafe { libc::munmap(self.ptr.as_ptr(), self.len) };
    }
}

/// Enter the guest until its next exit, which must be `KVM_EXIT_HLT`. Without an
/// in-kernel irqchip the halt returns to us, and the next `KVM_RUN` resumes after it.
fn run_to_hlt(vcpu: &OwnedFd, kvm_run: &Mapping) -> Result<(), ProbeError> {
    loop {
        match ioctl_value(vcpu, ValueRequest::Run) {
            // A signal interrupted the run; the guest state is intact: enter again.
            Err(ProbeError::Ioctl { source, .. })
                if source.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
            Ok(_) => break,
        }
    }
    match kvm_run.read_u32(EXIT_REASON_OFFSET) {
        KVM_EXIT_HLT => Ok(()),
        reason => Err(ProbeError::UnexpectedExit {
            reason,
            name: exit_name(reason),
        }),
    }
}

/// Real-mode guest: one page at guest-physical 0x1000 holding [`guest_code`]; cs base
/// 0, rip 0x1000. It must halt, then loop and halt again; returns the loop's time.
///
/// Declaration order matters for drop order: the guest memory outlives the VM.
pub(super) fn run_guest(step: impl Fn(&str)) -> Result<Duration, ProbeError> {
    // std opens with O_CLOEXEC.
    let kvm: File = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(ProbeError::Open)?;
    let api = ioctl_value(&kvm, ValueRequest::GetApiVersion)?;
    if api != KVM_API_VERSION {
        return Err(ProbeError::ApiVersion(api));
    }
    step(&format!("api {api}"));

    let mut guest_memory = Mapping::new("guest memory", PAGE, None)?;
    guest_memory.write(0, &guest_code());

    let vm = new_fd(ioctl_value(&kvm, ValueRequest::CreateVm)?);
    let mut region = UserspaceMemoryRegion {
        slot: 0,
        flags: 0,
        guest_phys_addr: GUEST_CODE_ADDR,
        memory_size: PAGE as u64,
        userspace_addr: guest_memory.addr(),
    };
    // SAFETY: KVM_SET_USER_MEMORY_REGION takes one kvm_userspace_memory_region.
    unsafe {
        ioctl_ptr(
            &vm,
            KVM_SET_USER_MEMORY_REGION,
            "KVM_SET_USER_MEMORY_REGION",
            &raw mut region,
        )
    }?;
    step("vm ready");

    let vcpu = new_fd(ioctl_value(&vm, ValueRequest::CreateVcpu)?);
    let run_size = ioctl_value(&kvm, ValueRequest::GetVcpuMmapSize)?;
    let run_size = usize::try_from(run_size).map_err(|_| ProbeError::Mmap {
        what: "kvm_run",
        source: io::Error::other(format!("bad size {run_size}")),
    })?;
    let kvm_run = Mapping::new("kvm_run", run_size, Some(&vcpu))?;

    let mut sregs = Sregs {
        cs: Segment::default(),
        rest: [0; 36],
    };
    // SAFETY: KVM_GET_SREGS fills one kvm_sregs (312 bytes, checked at compile time).
    unsafe { ioctl_ptr(&vcpu, KVM_GET_SREGS, "KVM_GET_SREGS", &raw mut sregs) }?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    // SAFETY: KVM_SET_SREGS reads one kvm_sregs.
    unsafe { ioctl_ptr(&vcpu, KVM_SET_SREGS, "KVM_SET_SREGS", &raw mut sregs) }?;

    // rflags bit 1 is reserved and must be set.
    let mut regs = Regs {
        rip: GUEST_CODE_ADDR,
        rflags: 2,
        ..Regs::default()
    };
    // SAFETY: KVM_SET_REGS reads one kvm_regs (144 bytes, checked at compile time).
    unsafe { ioctl_ptr(&vcpu, KVM_SET_REGS, "KVM_SET_REGS", &raw mut regs) }?;

    step(RUNNING_HLT_LINE);
    run_to_hlt(&vcpu, &kvm_run)?;
    step(RUNNING_LOOP_LINE);
    let started = Instant::now();
    run_to_hlt(&vcpu, &kvm_run)?;
    Ok(started.elapsed())
}
