import JSMDomain

/// The draws fixtures make from JSMDomain's seeded generator.
///
/// The standard library's `random(in:)` algorithms are not promised to stay the same across
/// releases; fixtures draw only through these, so their output depends on the seed alone.
extension SplitMix64 {
    /// A generator of its own for item `index` of stream `stream` of a seeded run, so an item's
    /// values do not depend on how many values were drawn before it.
    static func stream(seed: UInt64, stream: UInt64, index: Int) -> SplitMix64 {
        var mixer = SplitMix64(seed: seed ^ (stream &* 0xD6E8_FEB8_6659_FD93))
        var generator = SplitMix64(
            seed: mixer.next() ^ (UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15))
        _ = generator.next()
        return generator
    }

    /// A number in `0..<bound` (`bound > 0`); the modulo bias is far below what fixtures care about.
    mutating func uniform(_ bound: Int) -> Int {
        precondition(bound > 0, "uniform needs a positive bound")
        return Int(next() % UInt64(bound))
    }

    /// `true` with probability `probability`.
    mutating func chance(_ probability: Double) -> Bool {
        unit() < probability
    }

    /// A number in `0..<1` with 53 random bits.
    mutating func unit() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// One element of a non-empty array.
    mutating func pick<Element>(_ elements: [Element]) -> Element {
        elements[uniform(elements.count)]
    }
}
