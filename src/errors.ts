/**
 * Every user-facing failure in graft is a GraftError: a stable `code`, a message that says what was
 * expected and what arrived, and a `hint` that says what to do. The CLI prints these without a stack.
 */
export type ErrorCode =
  // graph and engine
  | 'E_GRAPH_INVALID'
  | 'E_GRAPH_SHAPE'
  | 'E_GRAPH_UNKNOWN_TENSOR'
  | 'E_GRAD_NO_RULE'
  | 'E_GRAD_UNSUPPORTED'
  | 'E_ONNX_PARSE'
  | 'E_RUNTIME'
  // data
  | 'E_FILE_MISSING'
  | 'E_CSV_EMPTY'
  | 'E_CSV_NO_LABEL'
  | 'E_CSV_NOT_NUMERIC'
  | 'E_CSV_NOT_FINITE'
  | 'E_CSV_RAGGED'
  | 'E_CSV_COLUMNS'
  | 'E_ONE_CLASS'
  | 'E_EMPTY_CLASS'
  | 'E_UNKNOWN_LABEL'
  | 'E_IMAGE_CORRUPT'
  | 'E_IMAGE_TOO_LARGE'
  | 'E_HUB_SHA256'
  | 'E_HUB_OFFLINE'
  | 'E_HUB_NETWORK'
  | 'E_HUB_NOT_FOUND'
  | 'E_HUB_HTTP'
  | 'E_HUB_REVISION'
  | 'E_HUB_BUSY'
  | 'E_ONNX_UNSAFE'
  | 'E_AUDIO_CORRUPT'
  | 'E_AUDIO_UNSUPPORTED'
  | 'E_RCC_CORRUPT'
  | 'E_RCC_UNSUPPORTED'
  | 'E_TEXT_ENCODING'
  | 'E_TOKENIZER'
  | 'E_ENCODER'
  | 'E_CONLL_MALFORMED'
  | 'E_CONLL_EMPTY'
  | 'E_NER_TAG'
  | 'E_BAD_OPTION'
  | 'E_FEATURES_NOT_FINITE'
  | 'E_TARGET_TOO_SMALL'
  // training
  | 'E_DIVERGED'
  | 'E_FIT_RUNNING'
  | 'E_CHECKPOINT'
  | 'E_ABORTED'
  // model folder
  | 'E_MODEL_MISSING'
  | 'E_MODEL_CORRUPT'
  | 'E_MODEL_VERSION'
  | 'E_USAGE';

export class GraftError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, hint: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'GraftError';
    this.code = code;
    this.hint = hint;
    this.details = details;
  }

  toJSON(): { code: ErrorCode; message: string; hint: string } {
    return { code: this.code, message: this.message, hint: this.hint };
  }
}

export function isGraftError(e: unknown): e is GraftError {
  return e instanceof GraftError;
}
