package api

import (
	"fmt"
	"html"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// render turns the two reference files into one HTML page. It walks the
// YAML nodes rather than maps so the page keeps the files' order.
func render(openapi, asyncapi []byte) ([]byte, error) {
	var o, a yaml.Node
	if err := yaml.Unmarshal(openapi, &o); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if err := yaml.Unmarshal(asyncapi, &a); err != nil {
		return nil, fmt.Errorf("asyncapi.yaml: %w", err)
	}
	if len(o.Content) == 0 || len(a.Content) == 0 {
		return nil, fmt.Errorf("empty reference file")
	}
	r := &renderer{}
	r.page(o.Content[0], a.Content[0])
	return []byte(r.b.String()), nil
}

type renderer struct{ b strings.Builder }

func (r *renderer) w(format string, args ...any) { fmt.Fprintf(&r.b, format, args...) }

// get returns the value of key in a mapping node, or nil.
func get(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// path follows keys from n.
func path(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		n = get(n, k)
	}
	return n
}

// pairs calls f for each key and value of a mapping node, in order.
func pairs(n *yaml.Node, f func(k string, v *yaml.Node)) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		f(n.Content[i].Value, n.Content[i+1])
	}
}

func str(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// prose escapes text and keeps its paragraphs and `code` spans.
func prose(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	var out strings.Builder
	for _, para := range strings.Split(s, "\n\n") {
		p := codeSpan.ReplaceAllString(html.EscapeString(strings.TrimSpace(para)), "<code>$1</code>")
		out.WriteString("<p>" + p + "</p>")
	}
	return out.String()
}

func esc(s string) string { return html.EscapeString(s) }

// anchor makes an id from a name: letters, digits, '-' and '.'.
func anchor(prefix, name string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// refLink turns a schema $ref (local or into openapi.yaml) into a link to
// the schema's section on this page.
func refLink(ref string) string {
	name := ref[strings.LastIndexByte(ref, '/')+1:]
	prefix := "schema-"
	if strings.Contains(ref, "/messages/") {
		prefix = "msg-"
	}
	return fmt.Sprintf(`<a href="#%s">%s</a>`, anchor(prefix, name), esc(name))
}

const style = `
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1b1f24;background:#fff}
header{background:#20262e;color:#fff;padding:1rem 2rem}
header a{color:#cfe3ff;margin-right:1.2rem}
main{max-width:64rem;margin:0 auto;padding:1rem 2rem 4rem}
h2{border-bottom:2px solid #d0d7de;padding-bottom:.3rem;margin-top:2.5rem}
h3{margin:1.8rem 0 .4rem;font-size:1.05rem}
section.op,section.schema,section.msg{border:1px solid #d0d7de;border-radius:6px;padding:.2rem 1rem .8rem;margin:1rem 0}
.method{display:inline-block;min-width:4rem;font:600 .8rem monospace;padding:.1rem .4rem;border-radius:4px;color:#fff;background:#57606a;text-align:center}
.GET{background:#0969da}.POST{background:#1a7f37}.PUT{background:#9a6700}.PATCH{background:#8250df}.DELETE{background:#cf222e}
code{font:.9em ui-monospace,SFMono-Regular,Menlo,monospace;background:#f3f4f6;padding:0 .2em;border-radius:3px}
table{border-collapse:collapse;width:100%;margin:.4rem 0}
th,td{border:1px solid #d8dee4;padding:.25rem .5rem;text-align:left;vertical-align:top;font-size:.92rem}
th{background:#f6f8fa}
td table{margin:.2rem 0}
.req{color:#cf222e;font-size:.8rem}
.muted{color:#57606a}
nav.toc{columns:2;font-size:.9rem}
nav.toc a{display:block}
@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}section.op,section.schema,section.msg,th,td{border-color:#30363d}th{background:#161b22}code{background:#161b22}.muted{color:#8b949e}a{color:#58a6ff}}
`

func (r *renderer) page(o, a *yaml.Node) {
	title := str(path(o, "info", "title"))
	r.w("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
	r.w("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">")
	r.w("<title>Parley API reference</title><style>%s</style></head><body>\n", style)
	r.w(`<header><strong>Parley API reference</strong> &nbsp; <a href="#rest">REST</a><a href="#realtime">Realtime</a><a href="#schemas">Schemas</a><a href="/docs/openapi.yaml">openapi.yaml</a><a href="/docs/asyncapi.yaml">asyncapi.yaml</a></header>`)
	r.w("<main>\n")

	// REST
	r.w(`<h2 id="rest">%s <span class="muted">(OpenAPI %s, version %s)</span></h2>`, esc(title), esc(str(get(o, "openapi"))), esc(str(path(o, "info", "version"))))
	r.w("%s", prose(str(path(o, "info", "description"))))
	if sec := path(o, "components", "securitySchemes"); sec != nil {
		pairs(sec, func(name string, v *yaml.Node) {
			r.w("<p><strong>Authentication</strong> (%s): %s</p>", esc(name), esc(str(get(v, "description"))))
		})
	}
	r.w(`<nav class="toc">`)
	r.eachOperation(o, func(method, p string, op *yaml.Node) {
		r.w(`<a href="#%s"><code>%s %s</code></a>`, anchor("op-", method+p), method, esc(p))
	})
	r.w("</nav>\n")
	r.eachOperation(o, func(method, p string, op *yaml.Node) { r.operation(o, method, p, op) })

	// Realtime
	r.w(`<h2 id="realtime">%s <span class="muted">(AsyncAPI %s, version %s)</span></h2>`, esc(str(path(a, "info", "title"))), esc(str(get(a, "asyncapi"))), esc(str(path(a, "info", "version"))))
	r.w("%s", prose(str(path(a, "info", "description"))))
	pairs(get(a, "channels"), func(name string, ch *yaml.Node) { r.channel(a, name, ch) })
	if cc := path(a, "components", "x-websocket-close-codes"); cc != nil {
		r.w(`<h3 id="close-codes">WebSocket close codes</h3>%s`, prose(str(get(cc, "description"))))
		r.w("<table><tr><th>code</th><th>meaning</th><th>what the client does</th></tr>")
		if codes := get(cc, "codes"); codes != nil {
			for _, c := range codes.Content {
				r.w("<tr><td><code>%s</code></td><td>%s</td><td>%s</td></tr>", esc(str(get(c, "code"))), esc(str(get(c, "meaning"))), esc(str(get(c, "client"))))
			}
		}
		r.w("</table>\n")
	}
	r.w(`<h3>Frames</h3>`)
	pairs(path(a, "components", "messages"), func(name string, m *yaml.Node) {
		r.w(`<section class="msg" id="%s"><h3><code>%s</code></h3>`, anchor("msg-", name), esc(str(get(m, "name"))))
		r.w("%s", prose(str(get(m, "summary"))))
		r.w("%s", prose(str(get(m, "description"))))
		r.schema(get(m, "payload"))
		r.w("</section>\n")
	})

	// Schemas of both files.
	r.w(`<h2 id="schemas">Schemas</h2>`)
	for _, doc := range []*yaml.Node{o, a} {
		pairs(path(doc, "components", "schemas"), func(name string, s *yaml.Node) {
			r.w(`<section class="schema" id="%s"><h3>%s</h3>`, anchor("schema-", name), esc(name))
			r.schema(s)
			r.w("</section>\n")
		})
	}
	r.w("</main></body></html>\n")
}

var methods = []string{"get", "post", "put", "patch", "delete", "head", "options"}

func (r *renderer) eachOperation(o *yaml.Node, f func(method, p string, op *yaml.Node)) {
	pairs(get(o, "paths"), func(p string, item *yaml.Node) {
		for _, m := range methods {
			if op := get(item, m); op != nil {
				f(strings.ToUpper(m), p, op)
			}
		}
	})
}

func (r *renderer) operation(o *yaml.Node, method, p string, op *yaml.Node) {
	r.w(`<section class="op" id="%s"><h3><span class="method %s">%s</span> <code>%s</code></h3>`, anchor("op-", method+p), method, method, esc(p))
	r.w("%s%s", prose(str(get(op, "summary"))), prose(str(get(op, "description"))))
	if sec := get(op, "security"); sec != nil && sec.Kind == yaml.SequenceNode && len(sec.Content) == 0 {
		r.w(`<p class="muted">No authentication.</p>`)
	}
	if params := get(op, "parameters"); params != nil && len(params.Content) > 0 {
		r.w("<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>")
		for _, prm := range params.Content {
			if ref := str(get(prm, "$ref")); ref != "" {
				prm = resolve(o, ref)
			}
			req := ""
			if str(get(prm, "required")) == "true" {
				req = ` <span class="req">required</span>`
			}
			r.w("<tr><td><code>%s</code>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>", esc(str(get(prm, "name"))), req, esc(str(get(prm, "in"))), typeText(get(prm, "schema")), esc(str(get(prm, "description"))))
		}
		r.w("</table>")
	}
	if body := get(op, "requestBody"); body != nil {
		r.w("<p><strong>Request body</strong>%s</p>", prose(str(get(body, "description"))))
		pairs(get(body, "content"), func(ct string, c *yaml.Node) {
			r.w(`<p class="muted"><code>%s</code></p>`, esc(ct))
			r.schema(get(c, "schema"))
		})
	}
	r.w("<table><tr><th>status</th><th>answer</th></tr>")
	pairs(get(op, "responses"), func(status string, resp *yaml.Node) {
		errName := ""
		if ref := str(get(resp, "$ref")); ref != "" {
			resp = resolve(o, ref)
			errName = "error"
		}
		r.w("<tr><td><code>%s</code></td><td>%s", esc(status), esc(str(get(resp, "description"))))
		pairs(get(resp, "content"), func(ct string, c *yaml.Node) {
			if errName != "" {
				r.w(" — %s", typeText(get(c, "schema")))
				return
			}
			r.w(` <span class="muted"><code>%s</code></span>`, esc(ct))
			r.schema(get(c, "schema"))
		})
		r.w("</td></tr>")
	})
	r.w("</table></section>\n")
}

func (r *renderer) channel(a *yaml.Node, name string, ch *yaml.Node) {
	r.w(`<h3 id="%s">%s <code>%s</code></h3>`, anchor("channel-", name), esc(str(get(ch, "title"))), esc(str(get(ch, "address"))))
	r.w("%s", prose(str(get(ch, "description"))))
	if q := path(ch, "bindings", "ws", "query"); q != nil {
		r.w("<p><strong>Query</strong></p>")
		r.schema(q)
	}
	// The frames a client sends are those of the channel's receive operations.
	fromClient := map[string]bool{}
	pairs(get(a, "operations"), func(_ string, op *yaml.Node) {
		if str(get(op, "action")) != "receive" {
			return
		}
		if msgs := get(op, "messages"); msgs != nil {
			for _, m := range msgs.Content {
				fromClient[str(get(m, "$ref"))] = true
			}
		}
	})
	var client, server []string
	pairs(get(ch, "messages"), func(mName string, m *yaml.Node) {
		link := refLink(str(get(m, "$ref")))
		if fromClient["#/channels/"+name+"/messages/"+mName] {
			client = append(client, link)
		} else {
			server = append(server, link)
		}
	})
	if len(client) > 0 {
		r.w("<p><strong>Client frames:</strong> %s</p>", strings.Join(client, ", "))
	}
	r.w("<p><strong>Server frames:</strong> %s</p>\n", strings.Join(server, ", "))
}

// resolve follows a local "#/a/b" reference.
func resolve(doc *yaml.Node, ref string) *yaml.Node {
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	return path(doc, strings.Split(strings.TrimPrefix(ref, "#/"), "/")...)
}

// typeText is a schema's short form: a link for a $ref, the type with its
// format, enum, const and items otherwise.
func typeText(s *yaml.Node) string {
	if s == nil {
		return `<span class="muted">any</span>`
	}
	if ref := str(get(s, "$ref")); ref != "" {
		return refLink(ref)
	}
	var parts []string
	if t := get(s, "type"); t != nil {
		if t.Kind == yaml.SequenceNode {
			var ts []string
			for _, x := range t.Content {
				ts = append(ts, esc(x.Value))
			}
			parts = append(parts, strings.Join(ts, " | "))
		} else {
			parts = append(parts, esc(t.Value))
		}
	}
	if f := str(get(s, "format")); f != "" {
		parts = append(parts, "("+esc(f)+")")
	}
	if c := get(s, "const"); c != nil {
		parts = append(parts, "<code>"+esc(c.Value)+"</code>")
	}
	if e := get(s, "enum"); e != nil {
		var vs []string
		for _, x := range e.Content {
			vs = append(vs, "<code>"+esc(x.Value)+"</code>")
		}
		parts = append(parts, "one of "+strings.Join(vs, ", "))
	}
	if it := get(s, "items"); it != nil {
		parts = append(parts, "of "+typeText(it))
	}
	for _, k := range []string{"oneOf", "anyOf"} {
		if alts := get(s, k); alts != nil {
			var vs []string
			for _, x := range alts.Content {
				vs = append(vs, typeText(x))
			}
			parts = append(parts, "one of "+strings.Join(vs, " or "))
		}
	}
	for _, k := range []string{"minimum", "maximum", "maxLength"} {
		if v := str(get(s, k)); v != "" {
			parts = append(parts, esc(k)+" "+esc(v))
		}
	}
	if len(parts) == 0 {
		if get(s, "properties") != nil {
			return "object"
		}
		return `<span class="muted">any</span>`
	}
	return strings.Join(parts, " ")
}

// schema writes a schema: its short form, its description, and a table of
// its properties (nested objects as nested tables).
func (r *renderer) schema(s *yaml.Node) {
	if s == nil {
		return
	}
	if all := get(s, "allOf"); all != nil {
		for _, b := range all.Content {
			r.schema(b)
		}
		return
	}
	props := get(s, "properties")
	if props == nil {
		r.w("<p>%s</p>%s", typeText(s), prose(str(get(s, "description"))))
		return
	}
	r.w("%s", prose(str(get(s, "description"))))
	required := map[string]bool{}
	if req := get(s, "required"); req != nil {
		for _, x := range req.Content {
			required[x.Value] = true
		}
	}
	r.w("<table><tr><th>field</th><th>type</th><th>description</th></tr>")
	pairs(props, func(name string, p *yaml.Node) {
		req := ""
		if required[name] {
			req = ` <span class="req">required</span>`
		}
		r.w("<tr><td><code>%s</code>%s</td><td>%s</td><td>", esc(name), req, typeText(p))
		switch it := get(p, "items"); {
		case get(p, "properties") != nil:
			r.schema(p) // writes the description too
		case it != nil && get(it, "properties") != nil:
			r.w("%s", prose(str(get(p, "description"))))
			r.schema(it)
		default:
			r.w("%s", prose(str(get(p, "description"))))
		}
		r.w("</td></tr>")
	})
	r.w("</table>")
}
