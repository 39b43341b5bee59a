// Module specifier resolution as QuickJS's default normaliser does it, which is what CCF uses.

/**
 * Resolves `specifier`, imported from module `base`, to a module name. As QuickJS: a specifier
 * not starting with "." is used as it is (no `node_modules` lookup: bundlers rewrite bare
 * imports); otherwise it is joined to `base`'s directory after consuming its leading "./" and
 * "../" segments (only leading ones: "a/../b" inside a specifier stays as written). CCF's KV keys
 * carry a leading "/" that our names do not, so leading slashes are dropped: "/x.js" and "x.js"
 * are one module.
 */
export function resolveModuleName(base: string, specifier: string): string {
  let name = specifier;
  if (specifier.startsWith(".")) {
    const slash = base.lastIndexOf("/");
    let dir = slash < 0 ? "" : base.slice(0, slash);
    let rest = specifier;
    for (;;) {
      if (rest.startsWith("./")) {
        rest = rest.slice(2);
      } else if (rest.startsWith("../")) {
        // Past the root, or onto a "." / ".." segment, QuickJS stops consuming and keeps the rest.
        if (dir === "") break;
        const cut = dir.lastIndexOf("/");
        const last = dir.slice(cut + 1);
        if (last === "." || last === "..") break;
        dir = cut < 0 ? "" : dir.slice(0, cut);
        rest = rest.slice(3);
      } else {
        break;
      }
    }
    name = dir === "" ? rest : `${dir}/${rest}`;
  }
  return stripLeadingSlashes(name);
}

export function stripLeadingSlashes(name: string): string {
  let i = 0;
  while (name.charCodeAt(i) === 0x2f) i++;
  return i === 0 ? name : name.slice(i);
}
