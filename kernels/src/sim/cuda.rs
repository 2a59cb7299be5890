//! The simulators on an NVIDIA GPU (feature `cuda`), through cudarc.
//!
//! `cuda.cu` holds the device kernels: the same games, RNG and matchmaking as the CPU code,
//! one thread per match over a persistent grid, with the pair statistics aggregated on the
//! device (in a block's shared memory for populations up to [`SHARED_STATS_MAX_N`]). NVRTC
//! compiles it for the device at [`CudaSimulator::open`], with FMA contraction off and the
//! transcendental quantities (concession targets, round-win probabilities) computed on the
//! host by the CPU code, so a match is bit-for-bit the same on both paths.
//!
//! The driver and NVRTC are loaded at run time: the crate builds without a CUDA toolkit, and
//! `open` returns [`CudaUnavailable`] (never panics) on a machine with no driver, no NVRTC or
//! no device, so callers print it and use the CPU path.

use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
    ValidAsZeroBits,
};
use cudarc::nvrtc::CompileOptions;

use super::bargain::{concession_target, BargainPolicy};
use super::battle::{in_form, round_win_prob};
use super::matchmaking::Matchmaker;
use super::run::{Game, PairStats, SimConfig, SimMatch, Simulation};

const SOURCE: &str = include_str!("cuda.cu");

/// Populations up to this size aggregate pair statistics in shared memory (n²·32 bytes).
pub const SHARED_STATS_MAX_N: usize = 32;
/// Matches per launch: keeps each launch's 64-bit fixed-point sums far from overflow
/// (2^26 · 2^32 < 2^63) and bounds the record buffer.
const MAX_LAUNCH: u64 = 1 << 26;
/// Records buffered on the device per launch when they are kept.
const RECORD_LAUNCH: u64 = 1 << 22;
const THREADS: u32 = 256;

/// Why the CUDA path cannot run here; callers fall back to the CPU.
#[derive(Debug, thiserror::Error)]
pub enum CudaUnavailable {
    #[error("no CUDA driver (libcuda) found; install the NVIDIA driver or use the CPU")]
    NoDriver,
    #[error("CUDA driver found but no usable GPU: {0}")]
    NoDevice(String),
    #[error(
        "NVRTC (libnvrtc, part of the CUDA toolkit) not found; install it or add its \
         directory (e.g. /usr/local/cuda/lib64) to LD_LIBRARY_PATH"
    )]
    NoNvrtc,
    #[error("compiling the simulator kernels with NVRTC failed: {0}")]
    Compile(String),
    #[error("CUDA error: {0}")]
    Driver(String),
}

fn driver(e: impl std::fmt::Debug) -> CudaUnavailable {
    CudaUnavailable::Driver(format!("{e:?}"))
}

/// One simulated match as the kernels write it (layout of `Record` in cuda.cu).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct DeviceRecord {
    index: u64,
    payoff: [f64; 2],
    batna: [f64; 2],
    i: u32,
    j: u32,
    raw: [u32; 2],
    flags: u32,
    actions: u32,
}

// SAFETY: plain-old-data with the C layout of `Record`; all-zero bits are a valid value.
unsafe impl DeviceRepr for DeviceRecord {}
unsafe impl ValidAsZeroBits for DeviceRecord {}

const HAS_AGREEMENT: u32 = 1;
const AGREEMENT: u32 = 2;
const HAS_EF1: u32 = 4;
const EF1: u32 = 8;
const HAS_FORM: u32 = 16;
const FORM_GOOD: u32 = 32;
const HAS_BATNA: u32 = 64;

impl DeviceRecord {
    fn to_match(self, propensity: f64) -> SimMatch {
        let flag =
            |has: u32, value: u32| (self.flags & has != 0).then_some(self.flags & value != 0);
        SimMatch {
            index: self.index,
            i: self.i as usize,
            j: self.j as usize,
            payoff: self.payoff,
            batna: (self.flags & HAS_BATNA != 0).then_some(self.batna),
            agreement: flag(HAS_AGREEMENT, AGREEMENT),
            ef1: flag(HAS_EF1, EF1),
            raw: self.raw,
            actions: self.actions as u8,
            propensity,
            form: flag(HAS_FORM, FORM_GOOD),
        }
    }
}

/// A GPU with the simulator kernels loaded.
pub struct CudaSimulator {
    stream: Arc<CudaStream>,
    bargain: CudaFunction,
    battle: CudaFunction,
    blocks: u32,
    /// Matches per launch (see [`MAX_LAUNCH`] and [`RECORD_LAUNCH`]).
    launch_limit: u64,
    /// "NAME (sm_XY)".
    pub device: String,
}

impl CudaSimulator {
    /// Opens device 0 and compiles the kernels for it.
    pub fn open() -> Result<CudaSimulator, CudaUnavailable> {
        // SAFETY: only probes whether the shared libraries can be loaded.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(CudaUnavailable::NoDriver);
        }
        let ctx = CudaContext::new(0).map_err(|e| CudaUnavailable::NoDevice(format!("{e:?}")))?;
        // SAFETY: as above.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(CudaUnavailable::NoNvrtc);
        }
        let (major, minor) = ctx.compute_capability().map_err(driver)?;
        let sms = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(driver)?;
        let opts = CompileOptions {
            // Exactly rounded, uncontracted arithmetic: the CPU's results, bit for bit.
            fmad: Some(false),
            ftz: Some(false),
            prec_div: Some(true),
            prec_sqrt: Some(true),
            options: vec![format!("--gpu-architecture=compute_{major}{minor}")],
            name: Some("nashflow_sim.cu".into()),
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts)
            .map_err(|e| CudaUnavailable::Compile(format!("{e:?}")))?;
        let module = ctx.load_module(ptx).map_err(driver)?;
        let name = ctx.name().map_err(driver)?;
        Ok(CudaSimulator {
            stream: ctx.default_stream(),
            bargain: module.load_function("bargain").map_err(driver)?,
            battle: module.load_function("battle").map_err(driver)?,
            // A persistent grid: a few blocks per multiprocessor, each thread looping.
            blocks: (sms.max(1) as u32) * 8,
            launch_limit: MAX_LAUNCH,
            device: format!("{name} (sm_{major}{minor})"),
        })
    }

    /// Caps the matches per launch (tests use it to cross launch boundaries cheaply).
    pub fn with_launch_limit(mut self, matches: u64) -> Self {
        self.launch_limit = matches.max(1);
        self
    }

    /// Runs matches `0..cfg.matches` like [`super::simulate`] (`cfg.threads` is ignored) and
    /// returns the same pair statistics and records.
    pub fn simulate(
        &self,
        game: &Game,
        cfg: &SimConfig,
        matchmaker: &Matchmaker,
    ) -> Result<Simulation, CudaUnavailable> {
        let n = game.population();
        let s = &self.stream;
        let schedule = matchmaker.schedule(n);
        // A non-empty buffer even for uniform pairing (the kernels never read it then).
        let cumulative = if schedule.cumulative.is_empty() {
            vec![0.0]
        } else {
            schedule.cumulative.clone()
        };
        let cumulative = s.clone_htod(&cumulative).map_err(driver)?;
        let tables = GameTables::new(game, s)?;
        let mut stats = s.alloc_zeros::<u64>(4 * n * n).map_err(driver)?;
        let per_launch = if cfg.keep_records {
            RECORD_LAUNCH
        } else {
            MAX_LAUNCH
        }
        .min(self.launch_limit);
        let buffered = if cfg.keep_records {
            per_launch.min(cfg.matches).max(1) as usize
        } else {
            1
        };
        let mut out = s.alloc_zeros::<DeviceRecord>(buffered).map_err(driver)?;
        // Page-locked (not write-combined: the host reads it) for full-speed copies.
        // SAFETY: the buffer is only read after a copy has filled it.
        let mut host = unsafe {
            s.context()
                .alloc_pinned_with_flags::<DeviceRecord>(buffered, 0)
        }
        .map_err(driver)?;
        let in_shared = n <= SHARED_STATS_MAX_N;
        let launch = LaunchConfig {
            grid_dim: (self.blocks, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: if in_shared { (32 * n * n) as u32 } else { 0 },
        };
        let (n32, kind, shared, keep) = (
            n as u32,
            schedule.kind as u32,
            in_shared as u32,
            cfg.keep_records as u32,
        );
        let mut pairs = vec![PairStats::default(); n * n];
        let mut records = Vec::with_capacity(if cfg.keep_records {
            cfg.matches as usize
        } else {
            0
        });
        let mut first = 0u64;
        while first < cfg.matches {
            let count = per_launch.min(cfg.matches - first);
            {
                let function = match &tables {
                    GameTables::Bargain { .. } => &self.bargain,
                    GameTables::Battle { .. } => &self.battle,
                };
                let mut args = s.launch_builder(function);
                args.arg(&cfg.seed)
                    .arg(&first)
                    .arg(&count)
                    .arg(&n32)
                    .arg(&kind);
                args.arg(&cumulative);
                match &tables {
                    GameTables::Bargain { kinds, targets } => args.arg(kinds).arg(targets),
                    GameTables::Battle { prob, rounds } => args.arg(prob).arg(rounds),
                };
                args.arg(&mut stats).arg(&shared).arg(&mut out).arg(&keep);
                // SAFETY: the argument list matches the kernel's signature in cuda.cu, every
                // buffer is large enough for `count` matches and n² pairs.
                unsafe { args.launch(launch) }.map_err(driver)?;
            }
            let sums = s.clone_dtoh(&stats).map_err(driver)?;
            s.memset_zeros(&mut stats).map_err(driver)?;
            for (p, c) in pairs.iter_mut().zip(sums.chunks_exact(4)) {
                p.n += c[0];
                p.sum_i += c[1] as i64 as i128;
                p.sum_j += c[2] as i64 as i128;
                p.agreements += c[3];
            }
            if cfg.keep_records {
                s.memcpy_dtoh(&out, &mut host).map_err(driver)?;
                // The copy into page-locked memory is asynchronous, and cudarc records the
                // slice's event only when it manages several streams: wait for the stream.
                s.synchronize().map_err(driver)?;
                let filled = host.as_slice().map_err(driver)?;
                records.extend(
                    filled[..count as usize]
                        .iter()
                        .map(|r| r.to_match(schedule.propensity[r.i as usize * n + r.j as usize])),
                );
            }
            first += count;
        }
        Ok(Simulation { pairs, records })
    }
}

/// The per-game tables the kernels read, computed on the host by the CPU code.
enum GameTables {
    Bargain {
        /// 0 random, 1 walk, 2 concession.
        kinds: CudaSlice<u32>,
        /// Three concession targets per policy (turns 0, 1, 2).
        targets: CudaSlice<f64>,
    },
    Battle {
        /// Seat 0's round-win probability per (i, j, form: none, good, bad).
        prob: CudaSlice<f64>,
        rounds: u32,
    },
}

impl GameTables {
    fn new(game: &Game, s: &Arc<CudaStream>) -> Result<GameTables, CudaUnavailable> {
        Ok(match game {
            Game::Bargain(policies) => {
                let mut kinds = Vec::new();
                let mut targets = Vec::new();
                for p in policies {
                    let (kind, t) = match *p {
                        BargainPolicy::Random => (0, [0.0; 3]),
                        BargainPolicy::Walk => (1, [0.0; 3]),
                        BargainPolicy::Concession { start, end, beta } => (
                            2,
                            [0, 1, 2].map(|turn| concession_target(start, end, beta, turn)),
                        ),
                    };
                    kinds.push(kind);
                    targets.extend(t);
                }
                GameTables::Bargain {
                    kinds: s.clone_htod(&kinds).map_err(driver)?,
                    targets: s.clone_htod(&targets).map_err(driver)?,
                }
            }
            Game::Battle(policies, cfg) => {
                let mut prob = Vec::with_capacity(3 * policies.len().pow(2));
                for a in policies {
                    for b in policies {
                        for form in [None, Some(true), Some(false)] {
                            prob.push(round_win_prob(&in_form(a, form, cfg), b, cfg));
                        }
                    }
                }
                GameTables::Battle {
                    prob: s.clone_htod(&prob).map_err(driver)?,
                    rounds: cfg.rounds,
                }
            }
        })
    }
}
