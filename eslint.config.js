'use strict'

// The lint rules of the fastify organisation (neostandard), with TypeScript support.
module.exports = require('neostandard')({
  ts: true,
  ignores: ['dist/**', 'coverage/**', '.tap/**']
})
