// Prints docs/testing.md's injectWS recipe, found as test/readme.test.ts finds it (./run.sh).
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { INJECTWS_RECIPE, blockAfterComment } from '../readme-blocks'

const testing = readFileSync(resolve(__dirname, '..', '..', 'docs', 'testing.md'), 'utf8')
process.stdout.write(blockAfterComment(testing, INJECTWS_RECIPE) + '\n')
