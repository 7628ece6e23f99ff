extension Sequence where Element: Sendable {
    /// Runs `transform` on every element with at most `limit` running at once, and returns the
    /// results in completion order (callers that need an order sort or key them).
    ///
    /// What a batch does at the site: a few dozen requests in flight keep the site busy without
    /// opening a connection per element.
    func boundedConcurrentMap<T: Sendable>(
        limit: Int, _ transform: @escaping @Sendable (Element) async throws -> T
    ) async throws -> [T] {
        var results: [T] = []
        results.reserveCapacity(underestimatedCount)
        try await boundedConcurrentForEach(limit: limit, transform) { results.append($0) }
        return results
    }

    /// Runs `transform` on every element with at most `limit` running at once, and hands each
    /// result to `receive`, on the calling task, as it completes: for callers that keep only what
    /// they derive from each result, not every result.
    func boundedConcurrentForEach<T: Sendable>(
        limit: Int, _ transform: @escaping @Sendable (Element) async throws -> T, receive: (T) throws -> Void
    ) async throws {
        var pending = makeIterator()
        try await withThrowingTaskGroup(of: T.self) { tasks in
            for _ in 0..<Swift.max(1, limit) {
                guard let element = pending.next() else { break }
                tasks.addTask { try await transform(element) }
            }
            // Bounded: each finished task starts at most one more, and the sequence is finite.
            while let done = try await tasks.next() {
                try receive(done)
                if let element = pending.next() { tasks.addTask { try await transform(element) } }
            }
        }
    }
}
