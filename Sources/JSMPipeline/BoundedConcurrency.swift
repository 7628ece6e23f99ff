extension Sequence where Element: Sendable {
    /// Runs `transform` on every element with at most `limit` running at once, and returns the
    /// results in completion order (callers that need an order sort or key them).
    ///
    /// What a batch does at the site: a few dozen requests in flight keep the site busy without
    /// opening a connection per element.
    func boundedConcurrentMap<T: Sendable>(
        limit: Int, _ transform: @escaping @Sendable (Element) async throws -> T
    ) async throws -> [T] {
        var pending = makeIterator()
        var results: [T] = []
        results.reserveCapacity(underestimatedCount)
        try await withThrowingTaskGroup(of: T.self) { tasks in
            for _ in 0..<Swift.max(1, limit) {
                guard let element = pending.next() else { break }
                tasks.addTask { try await transform(element) }
            }
            // Bounded: each finished task starts at most one more, and the sequence is finite.
            while let done = try await tasks.next() {
                results.append(done)
                if let element = pending.next() { tasks.addTask { try await transform(element) } }
            }
        }
        return results
    }
}
