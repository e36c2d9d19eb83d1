// Type-checks the TypeScript code blocks of a Markdown file (the README) against the package's
// public types, with the TypeScript compiler API: every ```ts block becomes a module of its
// own, held in memory, with a preamble that declares what a snippet takes from its context
// (`app`, `session`...) unless the snippet declares it itself. An HTML comment
// `<!-- check in examples/chat -->` before a block checks it as a module of that folder (for
// its relative imports). Errors are reported at their line in the Markdown file.
import { join, resolve } from 'node:path'
import ts from 'typescript'

const root = resolve(__dirname, '..')

/** What a snippet may use without declaring it: a name, and the line that declares it. */
const CONTEXT: ReadonlyArray<readonly [string, string]> = [
  ['Fastify', "import Fastify from 'fastify'"],
  ['FastifyInstance', "import type { FastifyInstance } from 'fastify'"],
  ['websocketRooms', "import websocketRooms from 'fastify-websocket-rooms'"],
  ['redisAdapter', "import { redisAdapter } from 'fastify-websocket-rooms'"],
  ['WebSocketSession', "import type { WebSocketSession } from 'fastify-websocket-rooms'"],
  ['Type', "import { Type } from '@sinclair/typebox'"],
  ['app', 'declare const app: FastifyInstance'],
  ['session', 'declare const session: WebSocketSession'],
  ['message', 'declare const message: string'],
  ['value', 'declare const value: unknown'],
  ['id', 'declare const id: string'],
  ['received', 'declare const received: string[]']
]

export interface CodeBlock {
  /** Line of the block's first line of code in the Markdown file (1-based). */
  line: number
  code: string
  /** The folder, relative to the repository, the block is checked in. */
  folder: string
}

/** An error at its line of the Markdown file, in `block` (none for an error of the whole program). */
export interface BlockError { line: number, message: string, block?: CodeBlock }

/** The ```ts and ```typescript blocks of a Markdown text. */
export function typescriptBlocks (markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = []
  const lines = markdown.split('\n')
  let folder = '.'
  for (let i = 0; i < lines.length; i++) {
    const directive = /^<!--\s*check in (\S+)\s*-->$/.exec(lines[i]!.trim())
    if (directive !== null) {
      folder = directive[1]!
      continue
    }
    const fence = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i]!)
    if (fence === null) continue
    const [, indent, marker, language] = fence
    const start = i + 1
    let end = start
    while (end < lines.length && !lines[end]!.trimStart().startsWith(marker!)) end++
    if (language === 'ts' || language === 'typescript') {
      const code = lines.slice(start, end).map((line) => line.startsWith(indent!) ? line.slice(indent!.length) : line).join('\n')
      blocks.push({ line: start + 1, code, folder })
    }
    folder = '.' // a directive applies to the next block only
    i = end
  }
  return blocks
}

/** The comment before docs/testing.md's injectWS recipe, run as it is written. */
export const INJECTWS_RECIPE = '<!-- injectWS recipe'

/** The ```ts block right after the HTML comment line starting with `marker` (docs/testing.md's recipe). */
export function blockAfterComment (markdown: string, marker: string): string {
  const line = markdown.split('\n').findIndex((text) => text.startsWith(marker)) + 1
  if (line === 0) throw new Error(`no "${marker}" comment`)
  const block = typescriptBlocks(markdown).find((candidate) => candidate.line > line)
  if (block === undefined || block.line !== line + 2) throw new Error(`no \`\`\`ts block right after "${marker}"`)
  return block.code
}

/** Names a module declares at its top level (imports, variables, functions, classes, types). */
function declaredNames (code: string): Set<string> {
  const names = new Set<string>()
  const file = ts.createSourceFile('block.mts', code, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS)
  const addBinding = (name: ts.BindingName): void => {
    if (ts.isIdentifier(name)) names.add(name.text)
    else for (const element of name.elements) if (!ts.isOmittedExpression(element)) addBinding(element.name)
  }
  for (const statement of file.statements) {
    if (ts.isImportDeclaration(statement)) {
      const clause = statement.importClause
      if (clause?.name !== undefined) names.add(clause.name.text)
      const bindings = clause?.namedBindings
      if (bindings !== undefined && ts.isNamespaceImport(bindings)) names.add(bindings.name.text)
      if (bindings !== undefined && ts.isNamedImports(bindings)) for (const element of bindings.elements) names.add(element.name.text)
    } else if (ts.isImportEqualsDeclaration(statement)) {
      names.add(statement.name.text)
    } else if (ts.isVariableStatement(statement)) {
      for (const declaration of statement.declarationList.declarations) addBinding(declaration.name)
    } else if ((ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement) || ts.isInterfaceDeclaration(statement) ||
      ts.isTypeAliasDeclaration(statement) || ts.isEnumDeclaration(statement)) && statement.name !== undefined) {
      names.add(statement.name.text)
    }
  }
  return names
}

/** The block as a module: the context it does not declare itself, then the block as it is. */
export function wrap (code: string): { text: string, preambleLines: number } {
  const declared = declaredNames(code)
  const preamble = CONTEXT.filter(([name]) => !declared.has(name)).map(([, line]) => line)
  preamble.push('export {}')
  return { text: preamble.join('\n') + '\n' + code + '\n', preambleLines: preamble.length }
}

/** The compiler options of tsconfig.json, plus JavaScript imports typed by inference (the examples are .mjs). */
function compilerOptions (): ts.CompilerOptions {
  const configFile = join(root, 'tsconfig.json')
  const { config } = ts.readConfigFile(configFile, (path) => ts.sys.readFile(path))
  const { options } = ts.parseJsonConfigFileContent(config, ts.sys, root, undefined, configFile)
  return { ...options, noEmit: true, allowJs: true, checkJs: false }
}

/** Type-checks the blocks together, each as its own module; returns every error at its Markdown line. */
export function checkBlocks (blocks: CodeBlock[]): BlockError[] {
  const options = compilerOptions()
  const host = ts.createCompilerHost(options)
  const files = new Map<string, { text: string, block: CodeBlock, preambleLines: number }>()
  blocks.forEach((block, index) => {
    const { text, preambleLines } = wrap(block.code)
    files.set(join(root, block.folder, `README.block-${index + 1}.mts`), { text, block, preambleLines })
  })
  const { fileExists, readFile, getSourceFile } = host
  host.fileExists = (path) => files.has(path) || fileExists.call(host, path)
  host.readFile = (path) => files.get(path)?.text ?? readFile.call(host, path)
  host.getSourceFile = (path, language, ...rest) => {
    const file = files.get(path)
    return file !== undefined ? ts.createSourceFile(path, file.text, language) : getSourceFile.call(host, path, language, ...rest)
  }
  const program = ts.createProgram([...files.keys()], options, host)
  const errors: BlockError[] = []
  for (const diagnostic of [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()]) {
    errors.push({ line: 0, message: ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n') })
  }
  for (const [path, file] of files) {
    const sourceFile = program.getSourceFile(path)!
    for (const diagnostic of [...program.getSyntacticDiagnostics(sourceFile), ...program.getSemanticDiagnostics(sourceFile)]) {
      const { line } = sourceFile.getLineAndCharacterOfPosition(diagnostic.start ?? 0)
      const inBlock = line - file.preambleLines
      errors.push({
        line: inBlock >= 0 ? file.block.line + inBlock : file.block.line,
        message: ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'),
        block: file.block
      })
    }
  }
  return errors
}

/** Where a block is checked, for messages. */
export function describeBlock (block: CodeBlock): string {
  return `the block at line ${block.line}${block.folder === '.' ? '' : ` (checked in ${block.folder})`}`
}
