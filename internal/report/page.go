package report

import "html/template"

// page is the report's template: one file, CSS inline, no script.
var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rapport report: {{.Title}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.2rem; }
.meta { color: #555; }
.decision { background: #f4f6f8; border-left: 4px solid #2b6cb0; padding: .6rem 1rem; }
svg.chart { display: block; width: 100%; height: auto; max-width: 51rem; margin: .5rem 0; }
table { border-collapse: collapse; font-size: .85rem; margin: .4rem 0 1rem; }
th, td { border: 1px solid #ddd; padding: .2rem .5rem; text-align: left; }
th { background: #f4f6f8; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
details { margin-bottom: 1rem; }
.note { color: #555; font-style: italic; }
</style>
</head>
<body>
<header>
<h1>{{.Name}}</h1>
<p class="meta">Namespace {{.Namespace}} · run {{.Run}} · phase {{.Phase}} · report made {{.Generated}}</p>
</header>
<main>
<section id="summary">
<h2>Hypothesis and decision</h2>
<dl>
<dt>Hypothesis</dt><dd>{{if .Hypothesis}}{{.Hypothesis}}{{else}}(none given){{end}}</dd>
<dt>Touchpoint</dt><dd>{{if .Touchpoint}}{{.Touchpoint}}{{else}}(none given){{end}}</dd>
<dt>Judged by</dt><dd>{{.Settings}}</dd>
</dl>
<p class="decision"><strong>Decision:</strong> {{.Decision}}</p>
{{if .Rollbacks}}<table><caption>Rollbacks</caption>
<thead><tr><th>segment</th><th>variant</th><th>reason</th><th>at (UTC)</th><th>evidence</th></tr></thead>
<tbody>{{range .Rollbacks}}<tr><td>{{.Segment}}</td><td>{{.Variant}}</td><td>{{.Reason}}</td><td>{{.At}}</td><td>{{.Evidence}}</td></tr>{{end}}</tbody>
</table>{{end}}
</section>
{{if .NoHistory}}<p class="note">No history of this run was recorded (the experiment's history ConfigMap is missing), so the charts over time are not shown.</p>{{end}}
{{range .Segments}}
<section class="segment" data-segment="{{.Name}}">
<h2>Segment {{.Name}}</h2>
<p>{{.Decision}}</p>
{{range .Charts}}{{template "chart" .}}{{end}}
</section>
{{end}}
<section id="distribution">
<h2>Score distribution</h2>
{{if .Distribution}}{{template "chart" .Distribution}}{{else}}<p class="note">{{.NoDistribution}}</p>{{end}}
</section>
<section id="method">
<h2>Method and guarantee</h2>
{{range .Method}}<p>{{.}}</p>{{end}}
</section>
</main>
</body>
</html>
{{define "chart"}}<figure id="{{.ID}}-figure">
<figcaption><h3>{{.Heading}}</h3></figcaption>
{{.SVG}}
<details><summary>Table of the figures</summary>
<table><caption>{{.Table.Caption}}</caption>
<thead><tr>{{range .Table.Head}}<th scope="col">{{.}}</th>{{end}}</tr></thead>
<tbody>{{range .Table.Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</tbody>
</table></details>
</figure>{{end}}
`))
