// Registers every op's type inference and gradient rule.
import './elementwise.ts';
import './shape.ts';
import './reduce.ts';
import './nn.ts';
import './loss.ts';
import './recurrent.ts';
import './gradreverse.ts';
