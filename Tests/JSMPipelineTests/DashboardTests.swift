import Foundation
import JSMPipeline
import Testing

/// deploy/grafana's dashboard must chart the metrics the programs export, under their exact names.
@Suite("deploy/grafana dashboard")
struct DashboardTests {
    @Test("every jsm_ metric the dashboard queries is one the workers or the aggregator export, and each is charted")
    func dashboardNamesExist() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("deploy/grafana/jsm-migrate-dashboard.json"))
        struct Dashboard: Decodable {
            struct Panel: Decodable {
                struct Target: Decodable { let expr: String }
                let targets: [Target]
            }
            let panels: [Panel]
        }
        let expressions = try JSONDecoder().decode(Dashboard.self, from: data).panels.flatMap(\.targets).map(\.expr)
        let exported = Set(PipelineMetrics.all)
        var queried = Set<String>()
        for expression in expressions {
            // A histogram is queried through its _bucket series.
            let pattern = /jsm_[a-z_]+/
            for match in expression.matches(of: pattern) {
                var name = String(match.output)
                if name.hasSuffix("_bucket") { name.removeLast("_bucket".count) }
                queried.insert(name)
            }
        }
        #expect(queried.subtracting(exported).isEmpty, "unknown names: \(queried.subtracting(exported))")
        #expect(exported.subtracting(queried).isEmpty, "not charted: \(exported.subtracting(queried))")
    }
}
