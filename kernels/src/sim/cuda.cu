// Device kernels of the simulators, compiled at run time by NVRTC (see cuda.rs).
//
// Every rule and every random draw mirrors the CPU code, which documents them:
// philox.rs (the counter-based RNG), matchmaking.rs (pairing: seat 0, form, opponent from
// the host's cumulative tables), bargain.rs and battle.rs (the games). The host passes the
// floating-point quantities that need transcendental functions (concession targets, round
// win probabilities) as tables computed by the CPU code, and the kernels are compiled with
// --fmad=false, so every remaining operation is an exactly rounded IEEE operation in the same
// order as on the CPU: CPU and GPU produce identical matches for the same seed.

typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

// ---- Philox4x32-10 (philox.rs) -------------------------------------------------------------

struct Rng {
    u32 k0, k1, i0, i1, stream, block, pos;
    u32 b0, b1, b2, b3;

    __device__ Rng(u64 seed, u64 index, u32 s)
        : k0((u32)seed), k1((u32)(seed >> 32)), i0((u32)index), i1((u32)(index >> 32)),
          stream(s), block(0), pos(4), b0(0), b1(0), b2(0), b3(0) {}

    __device__ void refill() {
        u32 c0 = i0, c1 = i1, c2 = block, c3 = stream, a = k0, b = k1;
#pragma unroll
        for (int round = 0; round < 10; ++round) {
            if (round > 0) {
                a += 0x9E3779B9u;
                b += 0xBB67AE85u;
            }
            u32 hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
            u32 hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
            u32 n0 = hi1 ^ c1 ^ a, n2 = hi0 ^ c3 ^ b;
            c0 = n0;
            c1 = lo1;
            c2 = n2;
            c3 = lo0;
        }
        b0 = c0;
        b1 = c1;
        b2 = c2;
        b3 = c3;
        block += 1;
        pos = 0;
    }

    __device__ u32 next() {
        if (pos == 4) refill();
        // Selects instead of an indexed array keep the buffer in registers.
        u32 w = pos == 0 ? b0 : pos == 1 ? b1 : pos == 2 ? b2 : b3;
        pos += 1;
        return w;
    }

    __device__ u32 below(u32 n) { return __umulhi(next(), n); }

    __device__ double unit() { return (double)next() * (1.0 / 4294967296.0); }
};

// ---- Records and pair statistics (run.rs) --------------------------------------------------

// Layout shared with `DeviceRecord` in cuda.rs.
struct Record {
    u64 index;
    double payoff[2];
    double batna[2];
    u32 i, j;
    u32 raw[2];
    u32 flags;
    u32 actions;
};

#define HAS_AGREEMENT 1u
#define AGREEMENT 2u
#define HAS_EF1 4u
#define EF1 8u
#define HAS_FORM 16u
#define FORM_GOOD 32u
#define HAS_BATNA 64u

// Pairing (matchmaking.rs `Schedule::pair`). kind 0 uniform, 1 sigma, 2 rating.
__device__ void pair(u64 seed, u64 index, u32 n, u32 kind, const double* cumulative, u32* i,
                     u32* j, u32* flags) {
    Rng r(seed, index, 1);
    *i = r.below(n);
    if (kind == 0) {
        *j = r.below(n);
        return;
    }
    u32 form = 0;
    if (kind == 2) {
        bool good = r.unit() < 0.5;
        form = good ? 0 : 1;
        *flags |= HAS_FORM | (good ? FORM_GOOD : 0u);
    }
    double u = r.unit();
    const double* row = cumulative + ((u64)(*i) * 2 + form) * n;
    u32 k = 0;
    while (k + 1 < n && !(u < row[k])) ++k;
    *j = k;
}

// Pair statistics: n, Σ quantize(payoff_i), Σ quantize(payoff_j), agreements per ordered
// pair, in a block's shared memory when the population is small, else straight to global.
__device__ __forceinline__ void tally(u64* s, double pi, double pj, bool agreement) {
    atomicAdd(s, 1ull);
    atomicAdd(s + 1, (u64)(i64)round(pi * 4294967296.0));
    atomicAdd(s + 2, (u64)(i64)round(pj * 4294967296.0));
    if (agreement) atomicAdd(s + 3, 1ull);
}

extern __shared__ u64 shared_stats[];

__device__ void stats_begin(u32 cells, bool in_shared) {
    if (!in_shared) return;
    for (u32 k = threadIdx.x; k < cells * 4; k += blockDim.x) shared_stats[k] = 0;
    __syncthreads();
}

__device__ void stats_end(u32 cells, bool in_shared, u64* stats) {
    if (!in_shared) return;
    __syncthreads();
    for (u32 k = threadIdx.x; k < cells * 4; k += blockDim.x) {
        u64 v = shared_stats[k];
        if (v != 0) atomicAdd(stats + k, v);
    }
}

// ---- The bargaining game (bargain.rs) ------------------------------------------------------

#define OFFERS 80u
#define ACCEPT 80u
#define WALK 81u
#define MAX_ACTIONS 6

struct Player {
    u32 v0, v1, v2, max, batna;
};

__device__ __forceinline__ u32 worth(const Player& p, u32 o0, u32 o1, u32 o2) {
    return p.v0 * o0 + p.v1 * o1 + p.v2 * o2;
}

// The offer of least own value worth at least `need`; ties to the lowest action.
__device__ u32 cheapest_offer(const Player& p, u32 need) {
    u32 best = 0xFFFFFFFFu, action = 10 * 7 + 2 * 4 + 1;
    for (u32 o0 = 0; o0 <= 7; ++o0) {
        u32 a0 = p.v0 * o0;
        for (u32 o1 = 0; o1 <= 4; ++o1) {
            u32 a1 = a0 + p.v1 * o1;
            if (a1 >= need) {
                if (a1 < best) {
                    best = a1;
                    action = 10 * o0 + 2 * o1;
                }
                break;
            }
            u32 a2 = a1 + p.v2;
            if (a2 >= need && a2 < best) {
                best = a2;
                action = 10 * o0 + 2 * o1 + 1;
            }
        }
    }
    return action;
}

// kind: 0 random, 1 walk, 2 concession (targets[3] per policy).
__device__ u32 decide(u32 kind, const double* targets, const Player& me, int step,
                      bool has_offer, u32 o0, u32 o1, u32 o2, Rng& rng) {
    bool last = step + 1 == MAX_ACTIONS;
    if (kind == 1) return WALK;
    if (kind == 0) {
        u32 offers = last ? 0 : OFFERS;
        u32 legal = offers + (has_offer ? 1 : 0) + 1;
        u32 k = rng.below(legal);
        if (k < offers) return k;
        if (has_offer && k == offers) return ACCEPT;
        return WALK;
    }
    double target = targets[step / 2];
    u32 need = (u32)ceil(fmax(target * (double)me.max, (double)me.batna));
    if (has_offer && worth(me, 7 - o0, 4 - o1, 1 - o2) >= need) return ACCEPT;
    if (last) return WALK;
    return cheapest_offer(me, need);
}

__device__ bool envy_free_up_to_one(const Player& p, u32 own0, u32 own1, u32 own2, u32 oth0,
                                    u32 oth1, u32 oth2) {
    u32 best = 0;
    if (oth0 > 0 && p.v0 > best) best = p.v0;
    if (oth1 > 0 && p.v1 > best) best = p.v1;
    if (oth2 > 0 && p.v2 > best) best = p.v2;
    return worth(p, oth0, oth1, oth2) <= worth(p, own0, own1, own2) + best;
}

__device__ Player draw_values(Rng& r) {
    Player p;
    p.v0 = 1 + r.below(100);
    p.v1 = 1 + r.below(100);
    p.v2 = 1 + r.below(100);
    p.max = 7 * p.v0 + 4 * p.v1 + p.v2;
    p.batna = 0;
    return p;
}

// How one match ended (the game-specific part of a record).
struct Outcome {
    double pay0, pay1, batna0, batna1;
    u32 raw0, raw1, flags, actions;
    bool agreement;
};

__device__ Outcome play_bargain(const u32* kinds, const double* targets, u32 i, u32 j, Rng& r) {
    Player pl[2];
    pl[0] = draw_values(r);
    pl[1] = draw_values(r);
    pl[0].batna = r.below(pl[0].max / 2 + 1);
    pl[1].batna = r.below(pl[1].max / 2 + 1);

    u32 pol[2] = {i, j};
    bool has_offer = false;
    u32 proposer = 0, s0 = 0, s1 = 0, s2 = 0;
    Outcome o;
    o.raw0 = 0;
    o.raw1 = 0;
    o.actions = 0;
    o.agreement = false;
    o.flags = HAS_AGREEMENT | HAS_BATNA;
#pragma unroll
    for (int step = 0; step < MAX_ACTIONS; ++step) {
        const int p = step % 2;
        u32 a = decide(kinds[pol[p]], targets + 3 * pol[p], pl[p], step, has_offer, s0, s1, s2, r);
        if (a == ACCEPT) {
            // Bundles: the proposer keeps its share, the other gets the complement.
            u32 b[2][3];
            b[proposer][0] = s0;
            b[proposer][1] = s1;
            b[proposer][2] = s2;
            b[1 - proposer][0] = 7 - s0;
            b[1 - proposer][1] = 4 - s1;
            b[1 - proposer][2] = 1 - s2;
            o.raw0 = worth(pl[0], b[0][0], b[0][1], b[0][2]);
            o.raw1 = worth(pl[1], b[1][0], b[1][1], b[1][2]);
            o.agreement = true;
            bool ef1 =
                envy_free_up_to_one(pl[0], b[0][0], b[0][1], b[0][2], b[1][0], b[1][1], b[1][2]) &&
                envy_free_up_to_one(pl[1], b[1][0], b[1][1], b[1][2], b[0][0], b[0][1], b[0][2]);
            o.flags |= AGREEMENT | HAS_EF1 | (ef1 ? EF1 : 0u);
            o.actions = step + 1;
            break;
        }
        if (a == WALK) {
            o.raw0 = pl[0].batna;
            o.raw1 = pl[1].batna;
            o.actions = step + 1;
            break;
        }
        has_offer = true;
        proposer = p;
        s0 = a / 10;
        s1 = (a % 10) / 2;
        s2 = a % 2;
    }
    o.pay0 = (double)o.raw0 / (double)pl[0].max;
    o.pay1 = (double)o.raw1 / (double)pl[1].max;
    o.batna0 = (double)pl[0].batna / (double)pl[0].max;
    o.batna1 = (double)pl[1].batna / (double)pl[1].max;
    return o;
}

// ---- The battle game (battle.rs) -----------------------------------------------------------

// prob[(i·n + j)·3 + f]: seat 0's round-win probability with f = 0 no form, 1 good, 2 bad.
__device__ Outcome play_battle(const double* prob, u32 rounds, u32 n, u32 i, u32 j, u32 flags,
                               Rng& r) {
    u32 f = (flags & HAS_FORM) ? ((flags & FORM_GOOD) ? 1 : 2) : 0;
    double p = prob[((u64)i * n + j) * 3 + f];
    u32 won = 0;
    for (u32 t = 0; t < rounds; ++t) won += r.unit() < p ? 1 : 0;
    Outcome o;
    o.pay0 = (double)won / (double)rounds;
    o.pay1 = (double)(rounds - won) / (double)rounds;
    o.batna0 = 0.0;
    o.batna1 = 0.0;
    o.raw0 = won;
    o.raw1 = rounds - won;
    o.flags = 0;
    o.actions = rounds;
    o.agreement = false;
    return o;
}

// ---- The batch driver (run.rs `simulate`) --------------------------------------------------

// Plays matches first..first+count with `play(i, j, flags, rng)`: pairs each, tallies its
// pair statistics and, when `keep`, writes its record at out[index − first].
template <typename Play>
__device__ void play_matches(u64 seed, u64 first, u64 count, u32 n, u32 mm_kind,
                             const double* cumulative, u64* stats, u32 stats_in_shared,
                             Record* out, u32 keep, Play play) {
    u32 cells = n * n;
    bool in_shared = stats_in_shared != 0;
    stats_begin(cells, in_shared);
    u64* tallies = in_shared ? shared_stats : stats;
    u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 k = (u64)blockIdx.x * blockDim.x + threadIdx.x; k < count; k += stride) {
        u64 index = first + k;
        u32 i, j, flags = 0;
        pair(seed, index, n, mm_kind, cumulative, &i, &j, &flags);
        Rng r(seed, index, 0);
        Outcome o = play(i, j, flags, r);
        tally(tallies + 4 * (i * n + j), o.pay0, o.pay1, o.agreement);
        if (keep) {
            Record rec;
            rec.index = index;
            rec.payoff[0] = o.pay0;
            rec.payoff[1] = o.pay1;
            rec.batna[0] = o.batna0;
            rec.batna[1] = o.batna1;
            rec.i = i;
            rec.j = j;
            rec.raw[0] = o.raw0;
            rec.raw[1] = o.raw1;
            rec.flags = flags | o.flags;
            rec.actions = o.actions;
            out[k] = rec;
        }
    }
    stats_end(cells, in_shared, stats);
}

struct BargainPlay {
    const u32* kinds;
    const double* targets;
    __device__ Outcome operator()(u32 i, u32 j, u32, Rng& r) const {
        return play_bargain(kinds, targets, i, j, r);
    }
};

struct BattlePlay {
    const double* prob;
    u32 rounds, n;
    __device__ Outcome operator()(u32 i, u32 j, u32 flags, Rng& r) const {
        return play_battle(prob, rounds, n, i, j, flags, r);
    }
};

extern "C" __global__ void bargain(u64 seed, u64 first, u64 count, u32 n, u32 mm_kind,
                                   const double* cumulative, const u32* kinds,
                                   const double* targets, u64* stats, u32 stats_in_shared,
                                   Record* out, u32 keep) {
    play_matches(seed, first, count, n, mm_kind, cumulative, stats, stats_in_shared, out, keep,
                 BargainPlay{kinds, targets});
}

extern "C" __global__ void battle(u64 seed, u64 first, u64 count, u32 n, u32 mm_kind,
                                  const double* cumulative, const double* prob, u32 rounds,
                                  u64* stats, u32 stats_in_shared, Record* out, u32 keep) {
    play_matches(seed, first, count, n, mm_kind, cumulative, stats, stats_in_shared, out, keep,
                 BattlePlay{prob, rounds, n});
}
