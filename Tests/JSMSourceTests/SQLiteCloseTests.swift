import Foundation
import JSMSource
import SQLiteNIO
import Testing

@Suite("SQLite source connections")
struct SQLiteCloseTests {
    @Test("a connection closed from a cancelled task is closed; the async close leaves it open")
    func closeWhenCancelled() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("jsm-close-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let database = try await SQLiteSourceDatabase.open(
            path: folder.appendingPathComponent("jira.sqlite").path, mapMiB: 1)
        let asyncClosed = try await database.connect()
        let closedEvenIfCancelled = try await database.connect()
        // An interrupted dry run cancels the task that reads the source.
        let asyncCloseError = await Task {
            withUnsafeCurrentTask { $0?.cancel() }
            var caught: (any Error)?
            do { try await asyncClosed.close() } catch { caught = error }
            try? await closedEvenIfCancelled.closeEvenIfCancelled()
            return caught
        }.value
        #expect(asyncCloseError is CancellationError, "SQLiteNIO's async close drops a cancelled task's work")
        #expect(!asyncClosed.isClosed)
        #expect(closedEvenIfCancelled.isClosed)
        // Closed outside the cancelled task, so that neither connection traps in its deinit.
        for connection in [asyncClosed, closedEvenIfCancelled] where !connection.isClosed {
            try await connection.close()
        }
        try await database.close()
    }
}
