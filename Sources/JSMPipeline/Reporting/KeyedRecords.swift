import Foundation

/// verify's scratch directory (a ``ScratchDirectory`` named ``directoryPrefix``...): the two
/// sides of each comparison verify makes, written to disk as they are read and compared one
/// bucket at a time, so that verify's memory does not grow with the migration (a 1M migration held
/// in memory peaked at 0.52 GB).
struct VerifyScratch {
    /// What verify's scratch directories' names start with, under their parent.
    static let directoryPrefix = "jsm-verify-"
    /// Buckets per comparison: about 16,000 keys each at a million identities.
    static let defaultBuckets = 64

    let scratch: ScratchDirectory
    let bucketCount: Int

    /// A new directory under `parent` (the system's temporary directory: `TMPDIR` chooses it).
    init(bucketCount: Int = VerifyScratch.defaultBuckets, parent: URL = FileManager.default.temporaryDirectory)
        throws
    {
        scratch = try ScratchDirectory(prefix: Self.directoryPrefix, parent: parent, purpose: "verify")
        self.bucketCount = bucketCount
    }

    /// An empty set of records named `name`.
    func records(_ name: String) -> KeyedRecords {
        KeyedRecords(files: BucketFiles(in: scratch.url, name: name, bucketCount: bucketCount, purpose: "verify"))
    }

    /// Runs `body` with a new scratch directory, removed afterwards whether it throws or not; first
    /// removes the directories of verify runs that ended without removing theirs.
    static func with<T>(
        bucketCount: Int = VerifyScratch.defaultBuckets, parent: URL = FileManager.default.temporaryDirectory,
        abandoned: ([URL]) -> Void = { _ in }, _ body: (VerifyScratch) async throws -> T
    ) async throws -> T {
        let removed = ScratchDirectory.removeAbandoned(prefix: directoryPrefix, in: parent)
        if !removed.isEmpty { abandoned(removed) }
        let scratch = try VerifyScratch(bucketCount: bucketCount, parent: parent)
        defer { scratch.scratch.remove() }
        return try await body(scratch)
    }
}

/// Records of a key, a side and a few text fields, spread over bucket files by a stable hash of
/// the key: every record of one key is read back together, one bucket at a time.
struct KeyedRecords {
    /// One record read back.
    struct Record: Hashable {
        let key: String
        /// Which of the compared sides wrote it (the caller's numbering).
        let side: UInt8
        let fields: [String]
    }

    private var files: BucketFiles

    init(files: BucketFiles) { self.files = files }

    var bucketCount: Int { files.bucketCount }

    /// Appends a record of `key`.
    mutating func append(_ key: String, side: UInt8, _ fields: String...) throws {
        let bucket = Int(BucketFiles.stableHash(key) % UInt64(files.bucketCount))
        try files.append(to: bucket) { bytes in
            bytes.append(side)
            bytes.append(UInt8(fields.count))
            ScratchBytes.append(key, to: &bytes)
            for field in fields { ScratchBytes.append(field, to: &bytes) }
        }
    }

    /// Writes what is gathered; call once every record is appended, before reading.
    mutating func finish() throws { try files.flushAll() }

    /// The records of `bucket`, by key, each key's in the order they were appended.
    func records(inBucket bucket: Int) throws -> [String: [Record]] {
        var reader = ScratchBytes.Reader(bytes: try files.contents(of: bucket))
        var byKey: [String: [Record]] = [:]
        while !reader.atEnd {
            guard let side = reader.byte(), let count = reader.byte(), let key = reader.text() else {
                throw files.damaged(bucket, at: reader.offset)
            }
            var fields: [String] = []
            for _ in 0..<count {
                guard let field = reader.text() else { throw files.damaged(bucket, at: reader.offset) }
                fields.append(field)
            }
            byKey[key, default: []].append(Record(key: key, side: side, fields: fields))
        }
        return byKey
    }
}

/// The `limit` smallest of the values offered: the samples a check names, the same whatever
/// order the buckets come in.
struct SmallestValues {
    let limit: Int
    private(set) var values: [String] = []

    init(limit: Int) { self.limit = limit }

    mutating func offer(_ value: String) {
        guard values.count < limit || value < values[values.count - 1] else { return }
        let index = values.firstIndex { $0 > value } ?? values.count
        values.insert(value, at: index)
        if values.count > limit { values.removeLast() }
    }
}
