//! Philox4x32-10 (Salmon et al., SC'11): a counter-based RNG. Match `index` of a run with
//! `seed` draws from key = (seed low, seed high) and counter = (index low, index high, block,
//! stream), block = 0, 1, 2, … and stream 0 for the game, 1 for the matchmaker; each block gives four 32-bit words, consumed in order. The draw
//! order of each game is documented where it draws.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Ten Philox rounds on one counter block.
pub fn philox4x32(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (counter, key);
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let p0 = M0 as u64 * c[0] as u64;
        let p1 = M1 as u64 * c[2] as u64;
        c = [
            (p1 >> 32) as u32 ^ c[1] ^ k[0],
            p1 as u32,
            (p0 >> 32) as u32 ^ c[3] ^ k[1],
            p0 as u32,
        ];
    }
    c
}

/// The word stream of one match.
#[derive(Clone, Debug)]
pub struct MatchRng {
    key: [u32; 2],
    index: u64,
    stream: u32,
    block: u32,
    buf: [u32; 4],
    pos: usize,
}

impl MatchRng {
    /// The game's stream of match `index` (counter word 3 = 0).
    pub fn new(seed: u64, index: u64) -> Self {
        Self::with_stream(seed, index, 0)
    }

    /// Stream `stream` of match `index` (counter word 3), e.g. 1 for the matchmaker.
    pub fn with_stream(seed: u64, index: u64, stream: u32) -> Self {
        MatchRng {
            key: [seed as u32, (seed >> 32) as u32],
            index,
            stream,
            block: 0,
            buf: [0; 4],
            pos: 4,
        }
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.pos == 4 {
            let counter = [
                self.index as u32,
                (self.index >> 32) as u32,
                self.block,
                self.stream,
            ];
            self.buf = philox4x32(counter, self.key);
            self.block += 1;
            self.pos = 0;
        }
        self.pos += 1;
        self.buf[self.pos - 1]
    }

    /// Uniform in 0..n by multiply-shift (`(word · n) >> 32`): one word per draw, no loop, so
    /// the device kernel consumes exactly the same words.
    pub fn below(&mut self, n: u32) -> u32 {
        ((self.next_u32() as u64 * n as u64) >> 32) as u32
    }

    /// Uniform in [0, 1) with 32-bit resolution.
    pub fn unit(&mut self) -> f64 {
        self.next_u32() as f64 * (1.0 / 4_294_967_296.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of Random123's `kat_vectors` for philox4x32-10.
    #[test]
    fn known_answers() {
        assert_eq!(
            philox4x32([0; 4], [0; 2]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn streams_are_keyed_by_seed_and_index() {
        let words = |seed, index| {
            let mut r = MatchRng::new(seed, index);
            (0..9).map(|_| r.next_u32()).collect::<Vec<_>>()
        };
        assert_eq!(words(1, 2), words(1, 2));
        assert_ne!(words(1, 2), words(1, 3));
        assert_ne!(words(1, 2), words(2, 2));
        let mut r = MatchRng::new(0, 0);
        assert!((0..1000).all(|_| r.below(7) < 7));
    }
}
