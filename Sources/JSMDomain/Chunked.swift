extension Array {
    /// Consecutive slices of at most `size` elements: bulk statements and lookups take a bounded
    /// number of rows or keys at a time.
    public func chunked(_ size: Int) -> [ArraySlice<Element>] {
        let step = Swift.max(1, size)
        return stride(from: 0, to: count, by: step).map { self[$0..<Swift.min($0 + step, count)] }
    }
}
