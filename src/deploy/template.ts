// The `{{name}}` templates that ship in nginx/ and that `init` renders its nginx site from.
// Three rules, so a template stays a readable nginx file:
//   {{name}}                  replaced by its value (a string or a number, on one line);
//   {{#name}} ... {{/name}}   lines kept when the value is true, or repeated once per item
//                             when it is a list (the item's fields are placeholders inside);
//   {{^name}} ... {{/name}}   lines kept when the value is false.
// A section marker stands alone on its line, and the line goes. A placeholder without a
// value is an error, never an empty string.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

type TemplateValue = string | number | boolean | readonly TemplateScope[];
export type TemplateScope = { readonly [name: string]: TemplateValue };

/** The templates' folder: nginx/ at the package root, from src/deploy/ and dist/deploy/ alike. */
const NGINX_TEMPLATE_DIR = fileURLToPath(new URL('../../nginx/', import.meta.url));

const cache = new Map<string, string>();

/** The text of nginx/FILE as shipped. */
export function nginxTemplate(file: string): string {
  let text = cache.get(file);
  if (text === undefined) {
    text = readFileSync(NGINX_TEMPLATE_DIR + file, 'utf8');
    cache.set(file, text);
  }
  return text;
}

const MARKER = /^[ \t]*\{\{([#^/])(\w+)\}\}[ \t]*$/;
const PLACEHOLDER = /\{\{(\w+)\}\}/g;

interface Section {
  kind: '#' | '^';
  name: string;
  body: Node[];
}
type Node = string | Section;

function parse(text: string, where: string): Node[] {
  const root: Node[] = [];
  const open: { name: string; nodes: Node[] }[] = [{ name: '', nodes: root }];
  for (const line of text.split('\n')) {
    const m = MARKER.exec(line);
    const top = open.at(-1)!;
    if (!m) top.nodes.push(line);
    else if (m[1] === '/') {
      if (top.name !== m[2]) throw new Error(`${where}: {{/${m[2]}}} closes no open {{#${m[2]}}}`);
      open.pop();
    } else {
      const section: Section = { kind: m[1] as '#' | '^', name: m[2]!, body: [] };
      top.nodes.push(section);
      open.push({ name: section.name, nodes: section.body });
    }
  }
  if (open.length > 1) throw new Error(`${where}: {{#${open.at(-1)!.name}}} is never closed`);
  return root;
}

function lookup(scopes: readonly TemplateScope[], name: string, where: string): TemplateValue {
  for (let i = scopes.length - 1; i >= 0; i--) if (Object.hasOwn(scopes[i]!, name)) return scopes[i]![name]!;
  throw new Error(`${where}: no value for {{${name}}}`);
}

function render(nodes: readonly Node[], scopes: readonly TemplateScope[], where: string): string[] {
  const out: string[] = [];
  for (const node of nodes) {
    if (typeof node === 'string') {
      out.push(
        node.replace(PLACEHOLDER, (_all, name: string) => {
          const v = lookup(scopes, name, where);
          if ((typeof v !== 'string' && typeof v !== 'number') || String(v).includes('\n'))
            throw new Error(`${where}: {{${name}}} needs a one-line string or number, not ${JSON.stringify(v)}`);
          return String(v);
        }),
      );
      continue;
    }
    const v = lookup(scopes, node.name, where);
    if (Array.isArray(v)) {
      const items = v as readonly TemplateScope[];
      if (node.kind === '^') {
        if (items.length === 0) out.push(...render(node.body, scopes, where));
      } else for (const item of items) out.push(...render(node.body, [...scopes, item], where));
    } else if (typeof v === 'boolean') {
      if (v === (node.kind === '#')) out.push(...render(node.body, scopes, where));
    } else throw new Error(`${where}: {{${node.kind}${node.name}}} needs true, false or a list, not ${JSON.stringify(v)}`);
  }
  return out;
}

/** The template with every placeholder and section resolved from `scope`. */
export function fillTemplate(text: string, scope: TemplateScope, where = 'template'): string {
  return render(parse(text, where), [scope], where).join('\n');
}

/** The placeholder and section names a template uses. */
export function templateNames(text: string): Set<string> {
  return new Set([...text.matchAll(/\{\{[#^/]?(\w+)\}\}/g)].map((m) => m[1]!));
}
