import Foundation
import JSMContracts
import Testing

/// The .proto files and their README are the specification; the committed Swift must
/// not drift from them. These tests read the files of the repository itself.
@Suite("proto-docs agree with the committed Swift")
struct ContractDocumentationTests {
    /// The repository root, two folders above this file (Tests/JSMContractsTests/).
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func text(_ relativePath: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(relativePath), encoding: .utf8)
    }

    static func protoFiles() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("proto-docs").path)
            .filter { $0.hasSuffix(".proto") }
            .sorted()
    }

    /// The first capture group of every match of `pattern` in `text`.
    static func captures(_ pattern: String, in text: String) throws -> [String] {
        let regex = try NSRegularExpression(pattern: pattern, options: [.anchorsMatchLines])
        let range = NSRange(text.startIndex..., in: text)
        return regex.matches(in: text, range: range).compactMap { match in
            Range(match.range(at: 1), in: text).map { String(text[$0]) }
        }
    }

    @Test("the service's rpcs are exactly the RPCMethod cases, with the same message types")
    func serviceMatchesRPCMethod() throws {
        let service = try Self.text("proto-docs/migration_worker.proto")
        let regex = try NSRegularExpression(
            pattern: #"^\s*rpc (\w+)\((\w+)\) returns \((\w+)\);"#, options: [.anchorsMatchLines])
        let matches = regex.matches(in: service, range: NSRange(service.startIndex..., in: service))
        var rpcs: [String: (String, String)] = [:]
        for match in matches {
            let groups = (1...3).compactMap { Range(match.range(at: $0), in: service).map { String(service[$0]) } }
            if groups.count == 3 { rpcs[groups[0]] = (groups[1], groups[2]) }
        }
        #expect(Set(rpcs.keys) == Set(RPCMethod.allCases.map(\.rawValue)))
        for method in RPCMethod.allCases {
            #expect(
                "jsm.migration.v1." + (rpcs[method.rawValue]?.0 ?? "?") == method.requestMessageType.protoMessageName)
            #expect("jsm.migration.v1." + (rpcs[method.rawValue]?.1 ?? "?") == method.replyMessageType.protoMessageName)
        }
    }

    @Test("every .proto has its generated Swift, declaring every message and enum")
    func generatedSwiftIsComplete() throws {
        let files = try Self.protoFiles()
        #expect(files.count >= 5)
        for file in files {
            let proto = try Self.text("proto-docs/" + file)
            let swiftName = file.replacingOccurrences(of: ".proto", with: ".pb.swift")
            let swift = try Self.text("Sources/JSMContracts/Generated/" + swiftName)
            #expect(proto.contains("package jsm.migration.v1;"), "\(file)")
            #expect(proto.contains("option swift_prefix = \"JSM\";"), "\(file)")
            for name in try Self.captures(#"^(?:message|enum) (\w+) \{"#, in: proto) {
                #expect(
                    swift.contains("struct JSM\(name):") || swift.contains("enum JSM\(name):"),
                    "\(swiftName) lacks JSM\(name): run scripts/generate-protos.sh")
            }
        }
    }

    @Test("every enum's zero value is UNSPECIFIED")
    func zeroValuesAreUnspecified() throws {
        for file in try Self.protoFiles() {
            let proto = try Self.text("proto-docs/" + file)
            let zeros = try Self.captures(#"^\s*(\w+) = 0;"#, in: proto)
            for zero in zeros {
                #expect(zero.hasSuffix("_UNSPECIFIED"), "\(file): \(zero)")
            }
        }
    }

    @Test("the README names every queue, exchange, header, park reason and message")
    func readmeCoversTheContract() throws {
        let readme = try Self.text("proto-docs/README.md")
        var names = RPCMethod.allCases.flatMap { [$0.queueName, $0.replyTypeProperty] }
        names += [
            MigrationTopology.workExchange, MigrationTopology.resultsQueue, MigrationTopology.retryExchange,
            MigrationTopology.parkedQueue,
            HeaderName.schemaVersion, HeaderName.migrationID, HeaderName.attempt, HeaderName.parkReason,
            HeaderName.parkError, WireFormat.contentType, WireFormat.appID,
        ]
        names += RetryTier.standard.map(\.queueName)
        names += ParkReason.allCases.map(\.rawValue)
        for file in try Self.protoFiles() {
            names += try Self.captures(#"^(?:message|enum) (\w+) \{"#, in: Self.text("proto-docs/" + file))
        }
        for name in names {
            #expect(readme.contains("`\(name)`"), "README.md does not mention `\(name)`")
        }
    }
}
