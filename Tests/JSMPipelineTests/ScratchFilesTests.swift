import Foundation
import Testing

@testable import JSMPipeline

@Suite("verify's scratch records: every record of a key read back together, one bucket at a time")
struct ScratchFilesTests {
    /// Runs `body` with a verify scratch directory of `buckets` under a folder of the test's own.
    private func withScratch(buckets: Int, _ body: (VerifyScratch, URL) async throws -> Void) async throws {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("scratch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: parent) }
        try await VerifyScratch.with(bucketCount: buckets, parent: parent) { scratch in
            try await body(scratch, parent)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty, "the directory is removed")
    }

    @Test("records of one key come back together, in the order written, whatever the bucket count")
    func grouping() async throws {
        for buckets in [1, 3, 64] {
            try await withScratch(buckets: buckets) { scratch, _ in
                var records = scratch.records("keys")
                // Enough records that the 32 KiB buffers are written out several times.
                for index in 0..<20_000 {
                    try records.append("key-\(index % 5_000)", side: UInt8(index % 2), "field-\(index)", "")
                }
                try records.finish()
                var seen: [String: [KeyedRecords.Record]] = [:]
                for bucket in 0..<records.bucketCount {
                    for (key, group) in try records.records(inBucket: bucket) {
                        #expect(seen[key] == nil, "\(key) is in one bucket only")
                        seen[key] = group
                    }
                }
                #expect(seen.count == 5_000)
                let group = try #require(seen["key-7"])
                #expect(group.map(\.fields) == [7, 5_007, 10_007, 15_007].map { ["field-\($0)", ""] })
                #expect(group.map(\.side) == [1, 1, 1, 1])
            }
        }
    }

    @Test("a damaged scratch file is an error naming it")
    func damaged() async throws {
        try await withScratch(buckets: 1) { scratch, _ in
            var records = scratch.records("keys")
            try records.append("a-key", side: 0, "a field")
            try records.finish()
            let file = scratch.scratch.url.appendingPathComponent("keys-0.bin")
            let bytes = try Data(contentsOf: file)
            try bytes.dropLast(3).write(to: file)
            #expect {
                _ = try records.records(inBucket: 0)
            } throws: { error in
                "\(error)".contains("keys-0.bin is damaged")
            }
        }
    }

    @Test("a verify run removes the scratch directories no live run holds, and only those")
    func abandoned() async throws {
        try await withScratch(buckets: 2) { live, parent in
            var removed: [URL] = []
            let killed = parent.appendingPathComponent(VerifyScratch.directoryPrefix + "killed")
            try FileManager.default.createDirectory(at: killed, withIntermediateDirectories: true)
            try Data().write(to: killed.appendingPathComponent(ScratchDirectory.ownerLockName))
            try await VerifyScratch.with(bucketCount: 2, parent: parent, abandoned: { removed = $0 }) { _ in }
            #expect(removed.map(\.lastPathComponent) == [killed.lastPathComponent])
            #expect(FileManager.default.fileExists(atPath: live.scratch.url.path), "a live run's directory is kept")
        }
    }

    @Test("the samples a check names are the smallest values offered, in order")
    func smallest() {
        var sample = SmallestValues(limit: 3)
        for value in ["m", "c", "x", "a", "k", "b", "z"] { sample.offer(value) }
        #expect(sample.values == ["a", "b", "c"])
        var few = SmallestValues(limit: 5)
        for value in ["q", "p"] { few.offer(value) }
        #expect(few.values == ["p", "q"])
    }
}
