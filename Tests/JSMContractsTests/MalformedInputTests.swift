import JSMContracts
import JSMDomain
import SwiftProtobuf
import Testing

/// A worker parks what it cannot decode: decoding must fail with an error, never trap.
@Suite("Malformed bytes")
struct MalformedInputTests {
    @Test("cutting the last byte of a batch throws")
    func lastByteMissing() throws {
        let bytes: [UInt8] = try Fixture.identityBatch(count: 500).serializedBytes()
        #expect(throws: (any Error).self) {
            try JSMIdentityBatch(serializedBytes: Array(bytes.dropLast()))
        }
    }

    @Test("every truncation of a batch throws or yields a different, shorter batch")
    func everyTruncation() throws {
        let batch = Fixture.identityBatch(count: 20)
        let bytes: [UInt8] = try batch.serializedBytes()
        var thrown = 0
        for length in 0..<bytes.count {
            do {
                let decoded = try JSMIdentityBatch(serializedBytes: Array(bytes.prefix(length)))
                // Protobuf cannot tell a cut at a field boundary from a shorter message;
                // such a prefix must still never pass for the whole batch.
                #expect(decoded != batch)
                #expect(decoded.identities.count <= batch.identities.count)
            } catch {
                thrown += 1
            }
        }
        // Most cut points fall inside a field: those must all have thrown.
        #expect(thrown > bytes.count / 2)
    }

    @Test(
        "known malformed encodings throw",
        arguments: [
            ("wire type 7 does not exist", [UInt8]([0x0F, 0x00])),
            ("varint longer than 10 bytes", [UInt8]([0x10] + Array(repeating: 0xFF, count: 11) + [0x01])),
            ("length beyond the buffer", [UInt8]([0x32, 0x7F, 0x0A])),
            ("field number 0", [UInt8]([0x00, 0x01])),
            ("invalid UTF-8 in target_site_id", [UInt8]([0x1A, 0x02, 0xC3, 0x28])),
            ("end-group with no start-group", [UInt8]([0x0C])),
        ]
    )
    func malformed(_ description: String, _ bytes: [UInt8]) {
        #expect(throws: (any Error).self, "\(description)") {
            try JSMIdentityBatch(serializedBytes: bytes)
        }
    }

    @Test("random bytes never crash any decoder, and mostly throw")
    func randomBytes() {
        var random = SplitMix64(seed: 0x5EED_2026)
        var thrown = 0
        let attempts = 2000
        for _ in 0..<attempts {
            let count = Int.random(in: 1...512, using: &random)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            for method in RPCMethod.allCases {
                do {
                    _ = try method.requestMessageType.init(serializedBytes: bytes)
                } catch {
                    thrown += 1
                }
                do {
                    _ = try method.replyMessageType.init(serializedBytes: bytes)
                } catch {
                    thrown += 1
                }
            }
        }
        // Random bytes are almost never a valid message; a decoder that accepted most of
        // them would not be checking anything.
        #expect(thrown > attempts * RPCMethod.allCases.count * 2 * 9 / 10)
    }
}
