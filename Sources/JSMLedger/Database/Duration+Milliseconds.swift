extension Duration {
    /// Whole milliseconds, as the ledger stores times and SQLite takes its busy timeout.
    var wholeMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
